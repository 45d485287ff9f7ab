import { ParleyClient, RoomsApi } from '@parley/sdk';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../../homeserver/test/support/server.js';
import { ensureClientBuilt, launch, messageWith, openPage, shot, signUpInBrowser, unexpectedConsole } from './support.js';

// Side panels and reading aids in Chromium against a real homeserver: unread line and jump
// to first unread, threads, edit history, pinned messages, search.

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

describe('room panels', () => {
  it('unread line, threads, edit history, pins and search', async () => {
    const { page, context, errors } = await openPage(browser);
    try {
      await scenario(page);
      expect(unexpectedConsole(errors)).toEqual([]);
    } catch (err) {
      await shot(page, 'failure-panels').catch(() => {});
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

  await page.getByRole('link', { name: '+ New room' }).click();
  await page.getByLabel('Name', { exact: true }).fill('Hangar');
  await page.getByLabel(/^Invite/).fill('bob');
  // A room in the clear: server search, threads and edit history read it (encrypted rooms: e2e/encrypted-dm.e2e.test.ts).
  await page.getByTestId('create-encrypted').uncheck();
  await page.getByRole('button', { name: 'Create' }).click();
  await page.waitForURL(/\/room\//);
  const roomId = decodeURIComponent(new URL(page.url()).pathname.split('/')[2] as string);
  await bob.join(roomId);

  // Alice looks elsewhere while Bob writes a lot; opening the room shows where unread begins.
  await page.getByRole('link', { name: 'Settings', exact: true }).click();
  for (let i = 1; i <= 40; i++) await bob.sendText(roomId, i === 1 ? 'first unread: the falcon has landed' : `status update ${i}`);
  const item = page.getByRole('link', { name: /^Hangar.* 40 unread$/ });
  await item.waitFor({ timeout: 20_000 });
  await item.click();
  await messageWith(page, 'status update 40').waitFor();
  await page.getByTestId('jump-unread').click();
  await page.getByTestId('unread-line').waitFor();
  await expect.poll(() => messageWith(page, 'first unread').isVisible()).toBe(true);
  await shot(page, '40-unread-line');

  // Threads: Alice replies in a thread; Bob's thread reply arrives live in the panel.
  const root = messageWith(page, 'first unread');
  await root.hover();
  await root.getByRole('button', { name: 'Reply in thread' }).click();
  const panel = page.getByTestId('side-panel');
  await panel.getByRole('heading', { name: 'Thread' }).waitFor();
  await panel.getByTestId('thread-composer').fill('Great, refuel it');
  await panel.getByTestId('thread-composer').press('Enter');
  await panel.getByTestId('thread-replies').getByText('Great, refuel it').waitFor({ timeout: 15_000 });
  const rootId = (await bob.messages(roomId, { dir: 'b', limit: 100 })).chunk.find(
    (e) => e.content.body === 'first unread: the falcon has landed',
  )?.event_id as string;
  await bob.reply(roomId, rootId, 'Refuelling now', true);
  await panel.getByTestId('thread-replies').getByText('Refuelling now').waitFor({ timeout: 15_000 });
  await root.getByTestId('thread-link').filter({ hasText: '2 replies in thread' }).waitFor({ timeout: 15_000 });
  await shot(page, '41-thread-panel');
  await panel.getByRole('button', { name: 'Close Thread' }).click();

  // Edit history: Bob edits twice; the "(edited)" marker opens every version.
  const { event_id: draftId } = await bob.sendText(roomId, 'Takeoff at 9');
  await bob.edit(roomId, draftId, 'Takeoff at 10');
  await bob.edit(roomId, draftId, 'Takeoff at 11');
  // Back to the newest messages (reading the thread left the view further up).
  await page.getByRole('button', { name: 'Jump to the newest messages' }).click();
  const edited = messageWith(page, 'Takeoff at 11');
  await edited.waitFor({ timeout: 15_000 });
  await edited.getByTestId('edited').click();
  const history = page.getByTestId('edit-history');
  await history.getByText('Takeoff at 9').waitFor({ timeout: 15_000 });
  await expect.poll(() => history.locator('li').count(), { timeout: 15_000 }).toBe(3);
  expect(await history.locator('li').first().textContent()).toContain('Takeoff at 11');
  await shot(page, '42-edit-history');
  await page.getByRole('button', { name: 'Close Edit history' }).click();

  // Pins: Alice pins Bob's message; it is marked and listed.
  await edited.hover();
  await edited.getByRole('button', { name: 'Pin', exact: true }).click();
  await edited.getByTestId('pinned-mark').waitFor({ timeout: 15_000 });
  expect((await bob.getStateContent<{ pinned: string[] }>(roomId, 'room.pinned')).pinned).toEqual([draftId]);
  await page.getByRole('button', { name: 'Pinned messages: 1' }).click();
  await page.getByTestId('pinned-list').getByText('Takeoff at 11').waitFor();
  await shot(page, '43-pinned');
  await page.getByTestId('pinned-list').getByRole('button', { name: 'Unpin' }).click();
  await page.getByRole('button', { name: 'Pinned messages: 0' }).waitFor({ timeout: 15_000 });

  // Search through the server's search API.
  await page.getByRole('button', { name: 'Search messages' }).click();
  await page.getByLabel('Search for').fill('falcon');
  await page.getByLabel('Search for').press('Enter');
  await page.getByRole('status').filter({ hasText: '1 message found' }).waitFor({ timeout: 15_000 });
  await page.getByTestId('search-results').getByText('the falcon has landed').waitFor();
  await shot(page, '44-search');
  await page.getByLabel('Search for').press('Escape');
  await page.getByTestId('side-panel').waitFor({ state: 'detached' });

  // Keyboard: Ctrl+K and Enter open a room by name; Alt+↓/↑ move between rooms.
  await bob.create({ visibility: 'private', name: 'Workbench', invite: ['@alice:hs1.test'] });
  const invited = page.getByTestId('invite').filter({ hasText: 'Workbench' });
  await invited.waitFor({ timeout: 20_000 });
  await invited.getByRole('button', { name: 'Accept' }).click();
  await page.getByRole('heading', { name: 'Workbench' }).waitFor();
  await page.keyboard.press('Control+k');
  expect(await page.evaluate(() => document.activeElement?.id)).toBe('room-filter');
  await page.keyboard.type('hang');
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { name: 'Hangar' }).waitFor();
  const order = await page.getByRole('navigation', { name: 'Room list' }).locator('[data-nav-item]').allTextContents();
  const here = order.findIndex((t) => t.includes('Hangar'));
  const other = order.findIndex((t) => t.includes('Workbench'));
  await page.getByTestId('timeline').focus();
  await page.keyboard.press(other > here ? 'Alt+ArrowDown' : 'Alt+ArrowUp');
  await page.getByRole('heading', { name: 'Workbench' }).waitFor();

  // Phone width: a panel covers the room and closes back to it.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.getByRole('button', { name: 'Search messages' }).click();
  await shot(page, '45-phone-search');
  await page.getByRole('button', { name: 'Close Search messages' }).click();
}
