import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../../homeserver/test/support/server.js';
import { ensureClientBuilt, launch, messageWith, openPage, sendMessage, shot, signUpInBrowser, unexpectedConsole } from './support.js';

// Direct messages, mentions (autocomplete, pills, badges) and browser notifications, in
// Chromium against a real homeserver.

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

type Note = { title: string; body: string | undefined; tag: string | undefined };
async function notes(page: Page): Promise<Note[]> {
  return page.evaluate(() => (window as unknown as { __notes: Note[] }).__notes);
}

describe('direct messages, mentions and notifications', () => {
  it('starts a DM, mentions with autocomplete, shows pills and badges, notifies while away', async () => {
    const a = await openPage(browser);
    const b = await openPage(browser);
    // Bob allows notifications; the page's Notification constructor is observed (the real one still runs).
    await b.context.grantPermissions(['notifications'], { origin: server.url });
    await b.page.addInitScript(() => {
      const Real = window.Notification;
      const seen: Array<{ title: string; body: string | undefined; tag: string | undefined }> = [];
      (window as unknown as { __notes: typeof seen }).__notes = seen;
      class Observed extends Real {
        constructor(title: string, opts?: NotificationOptions) {
          seen.push({ title, body: opts?.body, tag: opts?.tag });
          super(title, opts);
        }
      }
      window.Notification = Observed;
    });
    try {
      await scenario(a.page, b.page);
      expect(unexpectedConsole(a.errors)).toEqual([]);
      expect(unexpectedConsole(b.errors)).toEqual([]);
    } catch (err) {
      await shot(a.page, 'failure-dm-alice').catch(() => {});
      await shot(b.page, 'failure-dm-bob').catch(() => {});
      console.error('alice console:', a.errors, '\nbob console:', b.errors);
      throw err;
    } finally {
      await a.context.close();
      await b.context.close();
    }
  });
});

async function scenario(alice: Page, bob: Page): Promise<void> {
  await signUpInBrowser(alice, 'alice', server.url);
  await signUpInBrowser(bob, 'bob', server.url);

  // Bob turns notifications on from Settings (a click: browsers ask only on a user gesture).
  await bob.getByRole('link', { name: 'Settings' }).click();
  await bob.getByRole('button', { name: 'Enable notifications' }).click();
  await bob.getByRole('button', { name: 'Turn off notifications' }).waitFor();

  // Alice starts a DM with Bob: it is named after him and listed under Direct messages.
  await alice.getByRole('link', { name: 'Start a direct message' }).click();
  await alice.getByLabel('Who do you want to message?').fill('bob');
  await alice.getByRole('button', { name: 'Start chatting' }).click();
  await alice.waitForURL(/\/room\//);
  await alice.getByRole('heading', { name: 'bob' }).waitFor();
  await alice.getByRole('region', { name: 'Direct messages' }).getByRole('link', { name: /^bob/ }).waitFor();
  const dmUrl = alice.url();

  // Bob sees the invitation under Alice's name, accepts, and has the DM under Direct messages.
  // (DMs are end-to-end encrypted: Bob's device reads what is sent once it has joined.)
  const invite = bob.getByTestId('invite').filter({ hasText: 'alice' });
  await invite.waitFor({ timeout: 20_000 });
  await invite.getByRole('button', { name: 'Accept' }).click();
  await bob.waitForURL(/\/room\//);
  await bob.getByTestId('room-lock').waitFor({ timeout: 15_000 });
  await sendMessage(alice, 'Hi Bob, just us here');
  await messageWith(bob, 'just us here').waitFor({ timeout: 30_000 });
  await bob
    .getByRole('region', { name: 'Direct messages' })
    .getByRole('link', { name: /^alice/ })
    .waitFor({ timeout: 15_000 });
  await shot(bob, '30-direct-message');

  // Starting a DM with someone you already have one with opens it again.
  await alice.getByRole('link', { name: 'Start a direct message' }).click();
  await alice.getByLabel('Who do you want to message?').fill('@bob:hs1.test');
  await alice.getByRole('button', { name: 'Start chatting' }).click();
  await alice.waitForURL(/\/room\//);
  expect(alice.url()).toBe(dmUrl);
  expect(await alice.getByRole('region', { name: 'Direct messages' }).getByRole('link', { name: /^bob/ }).count()).toBe(1);

  // Bob looks elsewhere; Alice's next DM becomes a notification.
  await bob.getByRole('link', { name: 'Settings' }).click();
  await sendMessage(alice, 'Are you around?');
  await expect
    .poll(() => notes(bob), { timeout: 20_000 })
    .toContainEqual(expect.objectContaining({ title: 'alice', body: 'Are you around?' }));

  // A room with both; Bob joins and then looks elsewhere.
  await alice.getByRole('link', { name: '+ New room' }).click();
  await alice.getByLabel('Name', { exact: true }).fill('Ops');
  await alice.getByLabel(/^Invite/).fill('bob');
  // Mentions are counted from message text, which the client reads in a room in the clear.
  await alice.getByTestId('create-encrypted').uncheck();
  await alice.getByRole('button', { name: 'Create' }).click();
  await alice.waitForURL(/\/room\//);
  const opsInvite = bob.getByTestId('invite').filter({ hasText: 'Ops' });
  await opsInvite.waitFor({ timeout: 20_000 });
  await opsInvite.getByRole('button', { name: 'Accept' }).click();
  await bob.getByRole('heading', { name: 'Ops' }).waitFor();
  await bob.getByRole('link', { name: 'Settings' }).click();

  // Alice mentions Bob through the autocomplete (keyboard only).
  await alice.reload();
  await alice.getByRole('heading', { name: 'Ops' }).waitFor();
  const box = alice.getByTestId('composer');
  await box.click();
  await box.pressSequentially('ping @bo');
  const list = alice.getByTestId('mention-list');
  await list.getByRole('option', { name: /bob/ }).waitFor({ timeout: 15_000 });
  // (No aria-expanded: a textarea may not carry it; the active option is announced instead.)
  expect(await box.getAttribute('aria-activedescendant')).toBe('mention-opt-0');
  await shot(alice, '31-mention-autocomplete');
  await box.press('Enter');
  expect(await box.inputValue()).toBe('ping @bob:hs1.test ');
  await box.pressSequentially('please look');
  await box.press('Enter');
  const pill = messageWith(alice, 'please look').getByTestId('mention');
  await pill.waitFor({ timeout: 15_000 });
  expect(await pill.textContent()).toBe('@bob');

  // Bob: a mention badge on Ops in the sidebar, and a notification naming the room.
  const ops = bob.getByRole('link', { name: /^Ops.* @1 mention, 1 unread$/ });
  await ops.waitFor({ timeout: 20_000 });
  expect(await ops.getByTestId('mention-badge').textContent()).toBe('@1');
  await expect
    .poll(() => notes(bob), { timeout: 20_000 })
    .toContainEqual(expect.objectContaining({ title: 'alice in Ops', body: 'ping @bob please look' }));
  await shot(bob, '32-mention-badge');

  // Opening the room shows the pill highlighted as mine and clears the badge.
  await ops.click();
  const mine = messageWith(bob, 'please look').getByTestId('mention');
  await mine.waitFor();
  expect(await mine.getAttribute('class')).toContain('mention-me');
  await bob.getByTestId('timeline').focus();
  await bob.getByTestId('timeline').press('End');
  await expect.poll(() => bob.getByTestId('mention-badge').count(), { timeout: 15_000 }).toBe(0);
  await shot(bob, '33-mention-pill');

  // A mention that was unread before a reload is still counted after it (read from history).
  await bob.getByRole('link', { name: 'Settings' }).click();
  await sendMessage(alice, 'and again @bob:hs1.test');
  await bob.getByRole('link', { name: /^Ops.* @1 mention, 1 unread$/ }).waitFor({ timeout: 20_000 });
  await bob.reload();
  await bob.getByRole('link', { name: /^Ops.* @1 mention, 1 unread$/ }).waitFor({ timeout: 20_000 });
}
