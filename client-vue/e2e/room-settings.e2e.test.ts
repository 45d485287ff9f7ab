import { ParleyClient, RoomsApi } from '@parley/sdk';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../../homeserver/test/support/server.js';
import { ensureClientBuilt, launch, makePng, openPage, shot, signUpInBrowser, unexpectedConsole } from './support.js';

// Room settings in the browser against a real homeserver: details, avatar, join rules,
// roles (create, colour, permissions, assign), members with roles and presence, kick, ban.

let server: TestServer;
let browser: Browser;

beforeAll(async () => {
  ensureClientBuilt();
  server = await startTestServer();
  browser = await launch();
});

afterAll(async () => {
  await browser?.close();
  await server?.close();
});

async function apiUser(name: string): Promise<{ client: ParleyClient; api: RoomsApi; id: string }> {
  const client = new ParleyClient({ baseUrl: server.url });
  const s = await client.register({ username: name, password: 'correct horse battery' });
  return { client, api: new RoomsApi(client), id: s.user_id };
}

describe('room settings', () => {
  it('edits details, avatar and join rule; creates and assigns a role; kicks and bans with reasons', async () => {
    const { page, context, errors } = await openPage(browser);
    try {
      await scenario(page, errors);
    } catch (err) {
      await shot(page, 'failure-room-settings').catch(() => {});
      console.error('console:', errors);
      throw err;
    } finally {
      await context.close();
    }
  });
});

async function scenario(page: Page, errors: string[]): Promise<void> {
  await signUpInBrowser(page, 'ada', server.url);
  const bob = await apiUser('bob');
  const carol = await apiUser('carol');
  const dan = await apiUser('dan');

  await page.getByRole('link', { name: '+ New room' }).click();
  await page.getByLabel('Name', { exact: true }).fill('Workshop');
  // A room in the clear (private rooms are encrypted by default; see e2e/encrypted-dm.e2e.test.ts).
  await page.getByTestId('create-encrypted').uncheck();
  await page.getByRole('button', { name: 'Create' }).click();
  await page.waitForURL(/\/room\//);
  const roomId = decodeURIComponent(new URL(page.url()).pathname.split('/')[2] as string);
  // Ada's own session (from the page) invites the others through the API; they join.
  const ada = new RoomsApi(
    new ParleyClient({
      baseUrl: server.url,
      session: await page.evaluate(() => JSON.parse(localStorage.getItem('parley.session.v1') ?? '{}').session),
    }),
  );
  for (const u of [bob, carol, dan]) {
    await ada.invite(roomId, u.id);
    await u.api.join(roomId);
  }

  // General: name, topic, join rule, avatar.
  await page.getByRole('link', { name: 'Manage room' }).click();
  await page.getByRole('tab', { name: 'General' }).waitFor();
  await page.getByLabel('Room name').fill('Workshop HQ');
  await page.getByLabel('Topic').fill('Tools, benches and plans');
  await page.getByLabel('Anyone who finds the room').check();
  await page.getByRole('button', { name: 'Save changes' }).click();
  await page.getByRole('status').filter({ hasText: 'Saved.' }).waitFor();
  await page
    .getByTestId('room-avatar-input')
    .setInputFiles({ name: 'room.png', mimeType: 'image/png', buffer: makePng(64, 64, [220, 120, 40]) });
  await page.getByRole('status').filter({ hasText: 'Avatar updated.' }).waitFor();
  await expect.poll(() => page.getByRole('tabpanel').getByTestId('avatar-image').getAttribute('src')).toMatch(/^blob:/);
  // The sidebar follows: new name, and the avatar picture.
  const item = page.getByRole('link', { name: /^Workshop HQ/ });
  await item.waitFor({ timeout: 15_000 });
  await item.getByTestId('avatar-image').waitFor({ timeout: 15_000 });
  expect(await bob.api.getStateContent(roomId, 'room.join_rules')).toEqual({ join_rule: 'public' });
  expect(await bob.api.getStateContent(roomId, 'room.topic')).toEqual({ topic: 'Tools, benches and plans' });
  await shot(page, '20-room-settings-general');

  // Roles: create "Crew" in green with the invite permission.
  await page.getByRole('tab', { name: 'Roles' }).click();
  await page.getByRole('button', { name: '+ New role' }).click();
  await page.getByLabel('Role name').fill('Crew');
  await page.getByLabel('Colour', { exact: true }).fill('#1f9d55');
  await page.getByLabel('Invite people').check();
  await page.getByRole('button', { name: 'Create role' }).click();
  await page.getByRole('status').filter({ hasText: 'Role saved.' }).waitFor();
  await page.getByTestId('role').filter({ hasText: 'Crew' }).waitFor();
  const roles = await bob.api.getStateContent<{ roles: Record<string, { name: string; color?: string; permissions: number }> }>(
    roomId,
    'room.roles',
  );
  expect(roles.roles.crew).toMatchObject({ name: 'Crew', color: '#1f9d55' });
  expect((roles.roles.crew?.permissions ?? 0) & (1 << 5)).not.toBe(0);
  await shot(page, '21-room-settings-roles');

  // Members: give Bob the role; his name takes its colour, and he may now invite.
  await page.getByRole('tab', { name: 'Members' }).click();
  const bobRow = page.getByTestId('member').filter({ hasText: '@bob:' });
  await bobRow.getByRole('button', { name: 'Roles' }).click();
  await bobRow.getByLabel('Crew').check();
  await bobRow.getByRole('button', { name: 'Save roles' }).click();
  await page.getByRole('status').filter({ hasText: 'Updated bob’s roles.' }).waitFor();
  await bobRow.getByText('Crew').waitFor();
  expect(await bobRow.locator('.name').evaluate((el) => getComputedStyle(el).color)).toBe('rgb(31, 157, 85)');
  const eve = await apiUser('eve');
  await bob.api.invite(roomId, eve.id);
  // Ada's own row shows her presence dot as online (her stream is open).
  await expect
    .poll(() => page.getByTestId('member').filter({ hasText: '@ada:' }).getByTestId('presence-dot').getAttribute('class'), {
      timeout: 15_000,
    })
    .toContain('online');

  // Kick Carol with a reason; ban Dan with a reason.
  const carolRow = page.getByTestId('member').filter({ hasText: '@carol:' });
  await carolRow.getByRole('button', { name: 'Kick' }).click();
  await carolRow.getByLabel('Reason').fill('Wrong room, sorry');
  await shot(page, '22-room-settings-members');
  await carolRow.getByRole('button', { name: 'Kick carol' }).click();
  await page.getByRole('status').filter({ hasText: 'Removed carol.' }).waitFor();
  await expect.poll(() => page.getByTestId('member').filter({ hasText: '@carol:' }).count()).toBe(0);
  const danRow = page.getByTestId('member').filter({ hasText: '@dan:' });
  await danRow.getByRole('button', { name: 'Ban' }).click();
  await danRow.getByLabel('Reason').fill('Spam');
  await danRow.getByRole('button', { name: 'Ban dan' }).click();
  await page.getByRole('region', { name: 'Banned' }).getByTestId('member').filter({ hasText: '@dan:' }).waitFor();
  const members = await bob.api.members(roomId);
  expect(members.find((m) => m.user_id === carol.id)?.membership ?? 'leave').toBe('leave');
  expect(members.find((m) => m.user_id === dan.id)?.membership).toBe('ban');
  expect(members.find((m) => m.user_id === eve.id)?.membership).toBe('invite');
  const state = await bob.api.getState(roomId);
  const danEvent = state.find((e) => e.type === 'room.member' && e.state_key === dan.id);
  expect(danEvent?.content.reason).toBe('Spam');
  await shot(page, '23-room-settings-banned');

  // Unban puts Dan back to "left".
  await page.getByRole('region', { name: 'Banned' }).getByRole('button', { name: 'Unban' }).click();
  await page.getByRole('status').filter({ hasText: 'Unbanned dan.' }).waitFor();

  // Phone width, dark theme.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.emulateMedia({ colorScheme: 'dark' });
  await page.getByRole('tab', { name: 'Roles' }).click();
  await shot(page, '24-room-settings-phone-dark');

  // On a phone the header keeps the title and drops Invite/Leave; settings offers leaving.
  await page.getByRole('link', { name: 'Back to room', exact: true }).click();
  await page.getByRole('heading', { name: 'Workshop HQ' }).waitFor();
  expect(await page.getByRole('button', { name: 'Leave' }).isVisible()).toBe(false);
  // The timeline tells what happened, with the reasons given.
  await page.getByText('ada removed carol: Wrong room, sorry').waitFor();
  await page.getByText('ada banned dan: Spam').waitFor();
  await page.getByText('ada changed the room avatar').waitFor();
  await shot(page, '25-room-phone-dark');
  await page.getByRole('link', { name: 'Manage room' }).click();
  page.once('dialog', (d) => void d.accept());
  await page.getByRole('button', { name: 'Leave room' }).click();
  await page.waitForURL((url) => url.pathname === '/');
  expect((await bob.api.members(roomId)).find((m) => m.user_id === '@ada:hs1.test')?.membership).toBe('leave');

  expect(unexpectedConsole(errors)).toEqual([]);
}
