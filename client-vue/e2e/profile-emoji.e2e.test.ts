import { ParleyClient, RoomsApi, uploadMedia } from '@parley/sdk';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../../homeserver/test/support/server.js';
import { ensureClientBuilt, launch, makePng, messageWith, openPage, shot, signUpInBrowser, unexpectedConsole } from './support.js';

// Avatars (profile upload, shown in the sidebar and the timeline), display-name changes
// arriving live, and the composer's emoji picker and :shortcode: completion.

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

describe('profiles and emoji', () => {
  it('uploads an avatar, shows name and avatar changes live, completes and picks emoji', async () => {
    const { page, context, errors } = await openPage(browser);
    try {
      await scenario(page);
      expect(unexpectedConsole(errors)).toEqual([]);
    } catch (err) {
      await shot(page, 'failure-profile-emoji').catch(() => {});
      console.error('console:', errors);
      throw err;
    } finally {
      await context.close();
    }
  });
});

async function scenario(page: Page): Promise<void> {
  await signUpInBrowser(page, 'alice', server.url);
  const bobClient = new ParleyClient({ baseUrl: server.url });
  await bobClient.register({ username: 'bob', password: 'correct horse battery' });
  const bob = new RoomsApi(bobClient);

  // Alice's avatar: uploaded in Settings, shown in the sidebar header.
  await page.getByRole('link', { name: 'Settings', exact: true }).click();
  await page
    .getByTestId('profile-avatar-input')
    .setInputFiles({ name: 'me.png', mimeType: 'image/png', buffer: makePng(48, 48, [200, 60, 120]) });
  await page.getByRole('status').filter({ hasText: 'Avatar updated.' }).waitFor();
  await expect
    .poll(() => page.getByRole('complementary', { name: 'Rooms' }).getByTestId('avatar-image').first().getAttribute('src'))
    .toMatch(/^blob:/);
  await shot(page, '50-profile-avatar');

  await page.getByRole('link', { name: '+ New room' }).click();
  const form = page.getByRole('form', { name: 'Create a room' });
  await form.getByLabel('Name', { exact: true }).fill('Lounge');
  await form.getByLabel(/^Invite/).fill('bob');
  // A room in the clear (private rooms are encrypted by default; see e2e/encrypted-dm.e2e.test.ts).
  await form.getByTestId('create-encrypted').uncheck();
  await form.getByRole('button', { name: 'Create' }).click();
  await page.waitForURL(/\/room\//);
  const roomId = decodeURIComponent(new URL(page.url()).pathname.split('/')[2] as string);
  await bob.join(roomId);
  await bob.sendText(roomId, 'hello from bob');
  const bobMsg = messageWith(page, 'hello from bob');
  await bobMsg.waitFor({ timeout: 15_000 });
  expect(await bobMsg.locator('header').textContent()).toContain('bob');

  // Bob renames himself and sets an avatar: Alice's open timeline follows without a reload.
  const { content_uri } = await uploadMedia(bobClient, makePng(40, 40, [30, 160, 90]), { contentType: 'image/png', filename: 'bob.png' });
  await bobClient.updateProfile('@bob:hs1.test', { displayname: 'Robert', avatar_url: content_uri });
  await expect.poll(() => bobMsg.locator('header').textContent(), { timeout: 15_000 }).toContain('Robert');
  await bobMsg.getByTestId('avatar-image').waitFor({ timeout: 15_000 });

  // Emoji by shortcode: ":roc" offers 🚀; Enter puts it in.
  const box = page.getByTestId('composer');
  await box.click();
  await box.pressSequentially('ship it :roc');
  await page
    .getByTestId('mention-list')
    .getByRole('option', { name: /rocket/ })
    .waitFor();
  await shot(page, '51-emoji-shortcode');
  await box.press('Enter');
  expect(await box.inputValue()).toBe('ship it 🚀');
  // The picker: search, Enter inserts the first match.
  await page.getByRole('button', { name: 'Insert emoji' }).click();
  await page.getByLabel('Search emoji').fill('tada');
  await shot(page, '52-emoji-picker');
  await page.getByLabel('Search emoji').press('Enter');
  expect(await box.inputValue()).toBe('ship it 🚀🎉');
  await box.press('Enter');
  await messageWith(page, 'ship it 🚀🎉').waitFor({ timeout: 15_000 });
  await expect
    .poll(async () => (await bob.messages(roomId, { dir: 'b', limit: 5 })).chunk.some((e) => e.content.body === 'ship it 🚀🎉'), {
      timeout: 15_000,
    })
    .toBe(true);
  await shot(page, '53-room-with-avatars');

  // Keyboard only: Escape closes the picker and returns to the composer.
  await page.getByRole('button', { name: 'Insert emoji' }).click();
  await page.getByLabel('Search emoji').press('Escape');
  await expect.poll(() => page.getByRole('dialog', { name: 'Insert emoji' }).count()).toBe(0);
  expect(await box.evaluate((el) => el === document.activeElement)).toBe(true);
}
