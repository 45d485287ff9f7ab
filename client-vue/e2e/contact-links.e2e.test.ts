import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FedServer } from '../../homeserver/test/support/federation.js';
import {
  axe,
  messageWith,
  openPage,
  sendMessage,
  shot,
  signUpInBrowser,
  startTwoServers,
  stopTwoServers,
  type TwoServers,
  unexpectedConsole,
} from './support.js';

// Contact links (issue 14): Alice on hs1 makes a link that names a mailbox queue, not her;
// Bob on hs2 opens it in the client of his own server and sends a request with a note; Alice's
// client reads it from the queue, she accepts, and a direct message joins the two of them.

let servers: TwoServers | undefined;
let hs1: FedServer;
let hs2: FedServer;
let browser: Browser;

beforeAll(async () => {
  servers = await startTwoServers();
  ({ hs1, hs2, browser } = servers);
});
afterAll(() => stopTwoServers(servers));

describe('contact links in the browser', () => {
  it('a user on another server sends a request through a link; the owner accepts and a DM exists', async () => {
    const a = await openPage(browser);
    const b = await openPage(browser);
    const alice = a.page;
    const bob = b.page;
    // Requests that failed, named by method and path (for the console checks at the end).
    const failed: string[] = [];
    alice.on('response', (r) => {
      if (r.status() >= 400) failed.push(`${r.status()} ${r.request().method()} ${new URL(r.url()).pathname}`);
    });
    try {
      await signUpInBrowser(alice, 'alice', hs1.url);
      await signUpInBrowser(bob, 'bob', hs2.url);

      // Alice makes a link from the Contacts entry of the sidebar.
      await alice.getByTestId('nav-contacts').click();
      await alice.getByRole('heading', { level: 1, name: 'Contacts' }).waitFor();
      await alice.getByLabel('Label (only you see it)').fill('Conference badge');
      await alice.getByTestId('make-contact-link').click();
      const urlBox = alice.getByTestId('contact-link-url');
      await urlBox.waitFor();
      const shared = await urlBox.inputValue();
      expect(shared).toMatch(new RegExp(`^${hs1.url}/contact#[A-Za-z0-9_-]+$`));
      // The link names a queue and a key, never Alice.
      const payload = Buffer.from(shared.split('#')[1] as string, 'base64url').toString('utf8');
      expect(payload).not.toMatch(/alice/i);
      expect(JSON.parse(payload)).toMatchObject({ v: 1, s: hs1.url });
      // The queue's keys stay in Alice's browser, under her user ID.
      const stored = await alice.evaluate(() => localStorage.getItem('parley.contact-links.v1:@alice:hs1.test'));
      expect(JSON.parse(stored ?? '[]')).toHaveLength(1);
      await shot(alice, 'contact-links-made');

      // Bob opens the link in the client of his own server (hs2) and sends a note.
      await bob.goto(`${hs2.url}/contact#${shared.split('#')[1]}`);
      await bob.getByRole('heading', { level: 1, name: 'Send a contact request' }).waitFor();
      await bob.getByTestId('contact-note').fill('Hi Alice, we met at the Parley talk. Bob');
      await shot(bob, 'contact-request-compose');
      expect(await axe(bob)).toEqual([]);
      await bob.getByTestId('contact-send').click();
      await bob.getByTestId('contact-request-sent').waitFor();
      await shot(bob, 'contact-request-sent');

      // Carol (hs2) opens the link while signed out: she signs in and lands back on it. A damaged
      // link says so instead of failing silently.
      await hs2.user('carol');
      const c = await openPage(browser);
      await c.page.goto(`${hs2.url}/contact#${shared.split('#')[1]}`);
      await c.page.waitForURL(/\/login/);
      await c.page.getByLabel('Username').fill('carol');
      await c.page.getByLabel('Password').fill('carol password');
      await c.page.getByRole('button', { name: 'Sign in' }).click();
      await c.page.getByRole('heading', { level: 1, name: 'Send a contact request' }).waitFor();
      await c.page.getByTestId('contact-note').fill('Carol here, selling things');
      await c.page.getByTestId('contact-send').click();
      await c.page.getByTestId('contact-request-sent').waitFor();
      await c.page.goto(`${hs2.url}/contact#not-a-link`);
      await c.page.getByTestId('contact-link-error').waitFor();
      await c.context.close();

      // Alice's client reads the queue (on open, every minute, or "Check now").
      await alice.getByTestId('contacts-check').click();
      const requests = alice.getByTestId('contact-request');
      await expect.poll(() => requests.count(), { timeout: 20_000 }).toBe(2);
      await expect.poll(() => alice.getByTestId('contact-request-count').textContent()).toContain('2');
      const request = requests.filter({ hasText: '@bob:hs2.test' });
      expect(await request.getByTestId('contact-request-note').textContent()).toContain('we met at the Parley talk');
      await shot(alice, 'contact-requests');
      expect(await axe(alice)).toEqual([]);
      await alice.emulateMedia({ colorScheme: 'dark' });
      expect(await axe(alice)).toEqual([]);
      await shot(alice, 'contact-requests-dark');
      await alice.emulateMedia({ colorScheme: 'light' });
      // At phone width the page replaces the room list and nothing sticks out sideways.
      await alice.setViewportSize({ width: 390, height: 844 });
      await shot(alice, 'contact-requests-phone');
      expect(await alice.evaluate(() => document.documentElement.scrollWidth - window.innerWidth)).toBeLessThanOrEqual(1);
      await alice.setViewportSize({ width: 1280, height: 800 });

      // Ignore Carol's: it goes, and stays gone on the next check (the mailbox deleted it).
      await requests.filter({ hasText: '@carol:hs2.test' }).getByTestId('contact-request-ignore').click();
      await expect.poll(() => requests.count()).toBe(1);
      const read = alice.waitForResponse((r) => /\/mailbox\/v1\/queues\/[^/]+\/messages$/.test(new URL(r.url()).pathname));
      await alice.getByTestId('contacts-check').click();
      expect((await read).status()).toBe(200);
      await expect.poll(() => alice.getByTestId('contacts-check').textContent()).toContain('Check now');
      expect(await requests.count()).toBe(1);

      // Accept: a direct message with Bob, through the usual DM flow.
      await request.getByTestId('contact-request-accept').click();
      await alice.waitForURL(/\/room\//);
      const roomId = decodeURIComponent(new URL(alice.url()).pathname.split('/').pop() ?? '');
      expect(roomId).toMatch(/:hs1\.test$/);
      const invite = bob.getByTestId('invite').first();
      await bob.goto(`${hs2.url}/`);
      await invite.waitFor({ timeout: 30_000 });
      await invite.getByRole('button', { name: 'Accept' }).click();
      await bob.waitForURL(/\/room\//);
      expect(decodeURIComponent(new URL(bob.url()).pathname.split('/').pop() ?? '')).toBe(roomId);
      await bob.getByText('bob joined').first().waitFor({ timeout: 20_000 });
      // The DM was made as "Start a direct message" makes one (end-to-end encrypted here): a
      // first message from Alice reaches Bob readable.
      await sendMessage(alice, 'Welcome, Bob — glad you found me');
      await messageWith(bob, 'Welcome, Bob — glad you found me').waitFor({ timeout: 30_000 });
      await shot(bob, 'contact-dm-bob');
      // Both are members of one direct room.
      await expect
        .poll(
          async () => {
            const res = await fetch(`${hs1.url}/api/v1/rooms/${encodeURIComponent(roomId)}/members`, {
              headers: { authorization: `Bearer ${await token(alice)}` },
            });
            const body = (await res.json()) as { members?: { user_id: string; membership: string }[] };
            return (body.members ?? [])
              .filter((m) => m.membership === 'join')
              .map((m) => m.user_id)
              .sort();
          },
          { timeout: 20_000 },
        )
        .toEqual(['@alice:hs1.test', '@bob:hs2.test']);
      await shot(alice, 'contact-dm-alice');

      // The request is gone from Alice's list (acknowledged); she revokes the link, after which
      // it can no longer be used.
      await alice.getByTestId('nav-contacts').click();
      await alice.getByTestId('no-contact-requests').waitFor();
      await alice.getByTestId('contact-link-revoke').click();
      await alice.getByTestId('contact-link-revoke-confirm').click();
      await expect.poll(() => alice.getByTestId('contact-link').count()).toBe(0);
      await bob.goto(`${hs2.url}/contact#${shared.split('#')[1]}`);
      await bob.getByTestId('contact-note').fill('again?');
      await bob.getByTestId('contact-send').click();
      await bob.getByRole('alert').waitFor();
      expect(await bob.getByRole('alert').textContent()).toMatch(/no longer works: its owner revoked it, or it expired/);
      await shot(bob, 'contact-link-revoked');

      // No mailbox or room request of Alice's failed; failed loads of other features (named in
      // `failed`) are theirs to test. Bob's one refusal is the revoked link's 404.
      expect(failed.filter((f) => /\/mailbox\/|\/rooms/.test(f))).toEqual([]);
      expect(unexpectedConsole(a.errors).filter((e) => !/Failed to load resource/.test(e))).toEqual([]);
      expect(unexpectedConsole(b.errors).filter((e) => !/Failed to load resource/.test(e))).toEqual([]);
    } finally {
      await a.context.close();
      await b.context.close();
    }
  });
});

async function token(page: import('playwright-core').Page): Promise<string> {
  const saved = await page.evaluate(() => localStorage.getItem('parley.session.v1'));
  return (JSON.parse(saved ?? '{}') as { session?: { access_token?: string } }).session?.access_token ?? '';
}
