import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../../homeserver/test/support/server.js';
import {
  ensureClientBuilt,
  type FlakyLink,
  flakyLink,
  launch,
  makePng,
  messageWith,
  openPage,
  sendMessage,
  shot,
  signUpInBrowser,
} from './support.js';

// Two people on one homeserver (federation is not built yet) use the real client in real
// Chromium against a real in-process homeserver serving the built client.

let server: TestServer;
let browser: Browser;
// Alice reaches the server through a relay the test can cut; Bob connects directly.
let link: FlakyLink;

beforeAll(async () => {
  ensureClientBuilt();
  server = await startTestServer();
  link = await flakyLink(server.port);
  browser = await launch();
});

afterAll(async () => {
  await browser?.close();
  await link?.close();
  await server?.close();
});

describe('static serving of the client', () => {
  it('serves the app at / and client routes, never over server paths', async () => {
    const root = await fetch(`${server.url}/`);
    expect(root.status).toBe(200);
    expect(root.headers.get('content-type')).toContain('text/html');
    expect(root.headers.get('cache-control')).toBe('no-cache');
    expect(root.headers.get('content-security-policy')).toContain("script-src 'self'");
    const html = await root.text();
    expect(html).toContain('<div id="app">');

    const route = await fetch(`${server.url}/room/!abc:hs1.test`);
    expect(route.status).toBe(200);
    expect(await route.text()).toBe(html);

    const asset = html.match(/\/assets\/index-[\w-]+\.js/)?.[0];
    expect(asset).toBeDefined();
    const js = await fetch(`${server.url}${asset}`);
    expect(js.status).toBe(200);
    expect(js.headers.get('cache-control')).toContain('immutable');
    expect(js.headers.get('content-type')).toContain('javascript');

    // /admin/… is the admin console's (admin/e2e); a missing hashed asset there is a 404 too.
    for (const p of ['/api/v1/nothing', '/federation/v1/x', '/admin/assets/gone-123.js', '/assets/gone-123.js']) {
      const res = await fetch(`${server.url}${p}`);
      expect(res.status, p).toBe(404);
      expect(res.headers.get('content-type'), p).toContain('application/json');
    }
    expect((await fetch(`${server.url}/health`)).headers.get('content-type')).toContain('application/json');
    expect((await fetch(`${server.url}/metrics`)).status).toBe(200);
    expect((await fetch(`${server.url}/..%2f..%2fpackage.json`)).headers.get('content-type')).toContain('text/html');
  });
});

describe('two people chat in the browser', () => {
  it('sign up, create, invite, accept, chat, reply, edit, react, upload, reload, reconnect', async () => {
    const a = await openPage(browser);
    const b = await openPage(browser);
    const alice = a.page;
    const bob = b.page;
    try {
      await scenario(alice, bob, a.errors, b.errors);
    } catch (err) {
      // What each person saw when it failed, next to the other screenshots.
      await shot(alice, 'failure-alice').catch(() => {});
      await shot(bob, 'failure-bob').catch(() => {});
      console.error('alice console:', a.errors, '\nbob console:', b.errors);
      throw err;
    } finally {
      await a.context.close();
      await b.context.close();
    }
  });
});

async function scenario(alice: Page, bob: Page, aliceErrors: string[], bobErrors: string[]): Promise<void> {
  {
    await alice.goto(link.url);
    await alice.waitForURL(/\/login/);
    await shot(alice, '01-sign-in');
    await alice.getByRole('link', { name: 'Create an account' }).click();
    await alice.getByRole('button', { name: 'Create account' }).waitFor();
    await shot(alice, '02-sign-up');

    await signUpInBrowser(alice, 'alice', link.url);
    await signUpInBrowser(bob, 'bob', server.url);
    await shot(alice, '03-home');

    // Alice creates a private room and invites Bob.
    await alice.getByRole('link', { name: '+ New room' }).click();
    await alice.getByLabel('Name', { exact: true }).fill('Project Falcon');
    await alice.getByLabel(/^Topic/).fill('Where the falcon gets built');
    await alice.getByLabel(/^Invite/).fill('bob');
    // A room in the clear (private rooms are encrypted by default; see e2e/encrypted-dm.e2e.test.ts).
    await alice.getByTestId('create-encrypted').uncheck();
    await shot(alice, '04-create-room');
    await alice.getByRole('button', { name: 'Create' }).click();
    // The room page is reached by the client's router (polled: through the flaky link's proxy,
    // Playwright's navigation wait never saw that history change).
    await expect.poll(() => alice.url(), { timeout: 30_000 }).toMatch(/\/room\//);
    await alice.getByRole('heading', { name: 'Project Falcon' }).waitFor();

    // Bob sees the invitation and accepts it.
    const invite = bob.getByTestId('invite').filter({ hasText: 'Project Falcon' });
    await invite.waitFor({ timeout: 20_000 });
    await shot(bob, '05-invite');
    await invite.getByRole('button', { name: 'Accept' }).click();
    await bob.waitForURL(/\/room\//);
    await bob.getByRole('heading', { name: 'Project Falcon' }).waitFor();

    // Both chat; Markdown is rendered, HTML is not.
    await sendMessage(alice, 'Hello **Bob**! <b>not bold</b>');
    const hello = messageWith(bob, 'Hello Bob!');
    await hello.waitFor({ timeout: 15_000 });
    expect(await hello.locator('strong').textContent()).toBe('Bob');
    expect(await hello.getByTestId('message-body').textContent()).toContain('<b>not bold</b>');
    await sendMessage(bob, 'Hi Alice, good to see you here');
    await messageWith(alice, 'Hi Alice').waitFor({ timeout: 15_000 });

    // Multi-line with Shift+Enter.
    const box = alice.getByTestId('composer');
    await box.fill('line one');
    await box.press('Shift+Enter');
    await box.type('line two');
    await box.press('Enter');
    await expect.poll(() => messageWith(alice, 'line one').locator('br').count()).toBe(1);

    // Bob replies to Alice's first message.
    await hello.hover();
    await hello.getByRole('button', { name: 'Reply', exact: true }).click();
    await bob.getByTestId('reply-bar').waitFor();
    await sendMessage(bob, 'Replying to your hello');
    const reply = messageWith(alice, 'Replying to your hello');
    await reply.waitFor({ timeout: 15_000 });
    expect(await reply.getByTestId('reply-quote').textContent()).toContain('Hello');

    // Alice edits her last text message with the Up key.
    await alice.getByTestId('composer').click();
    await alice.getByTestId('composer').press('ArrowUp');
    await alice.getByTestId('edit-bar').waitFor();
    expect(await alice.getByTestId('composer').inputValue()).toBe('line one\nline two');
    await alice.getByTestId('composer').fill('line one, edited');
    await alice.getByTestId('composer').press('Enter');
    const edited = messageWith(bob, 'line one, edited');
    await edited.waitFor({ timeout: 15_000 });
    await edited.getByTestId('edited').waitFor();

    // Bob reacts to Alice's hello; Alice sees the count.
    await hello.hover();
    await hello.getByRole('button', { name: 'React' }).click();
    await bob.getByRole('button', { name: 'React with 🎉' }).click();
    const aliceHello = messageWith(alice, 'Hello Bob!');
    await aliceHello.getByTestId('reaction').filter({ hasText: '🎉' }).waitFor({ timeout: 15_000 });
    expect(await aliceHello.getByTestId('reaction').first().textContent()).toContain('1');
    // Alice adds the same reaction: the count goes to 2, marked as hers.
    await aliceHello.getByTestId('reaction').first().click();
    await expect.poll(() => aliceHello.getByTestId('reaction').first().getAttribute('aria-pressed')).toBe('true');
    await expect.poll(() => aliceHello.getByTestId('reaction').first().textContent(), { timeout: 15_000 }).toContain('2');
    expect(await messageWith(alice, 'Replying to your hello').getByTestId('reaction').count()).toBe(0);

    // Alice uploads an image; both see it (fetched with the token, shown from a blob: URL).
    await alice
      .getByTestId('file-input')
      .setInputFiles({ name: 'falcon.png', mimeType: 'image/png', buffer: makePng(160, 100, [60, 120, 220]) });
    for (const page of [alice, bob]) {
      const img = page.getByTestId('message-image').last();
      await img.waitFor({ timeout: 20_000 });
      await expect.poll(() => img.evaluate((el: HTMLImageElement) => el.complete && el.naturalWidth)).toBe(160);
      expect(await img.getAttribute('src')).toMatch(/^blob:/);
    }
    await expect.poll(() => alice.getByTestId('send-status').count(), { timeout: 15_000 }).toBe(0);
    await shot(alice, '06-room');
    await shot(bob, '07-room-bob');

    // Unread badge: Bob reads to the bottom (his hovering scrolled up), looks elsewhere,
    // Alice writes, Bob's sidebar counts exactly that message.
    await bob.getByTestId('timeline').focus();
    await bob.getByTestId('timeline').press('End');
    await expect.poll(() => bob.getByRole('link', { name: /^Project Falcon.* \d+ unread$/ }).count()).toBe(0);
    // The badge clears locally at once; the receipt reaches the server a moment later. Wait
    // until the server holds it (this was an 800 ms sleep), or the next room list could
    // bring the old count back.
    const serverUnread = async () => {
      const token = await bob.evaluate(() => JSON.parse(localStorage.getItem('parley.session.v1') ?? '{}').session?.access_token);
      const res = await fetch(`${server.url}/api/v1/rooms`, { headers: { authorization: `Bearer ${token}` } });
      const { rooms } = (await res.json()) as { rooms: Array<{ name: string | null; unread_count: number }> };
      return rooms.find((r) => r.name === 'Project Falcon')?.unread_count;
    };
    await expect.poll(serverUnread, { timeout: 15_000 }).toBe(0);
    await bob.getByRole('link', { name: 'Settings' }).click();
    await sendMessage(alice, 'Are you there, Bob?');
    const badge = bob.getByRole('link', { name: /^Project Falcon.* 1 unread$/ });
    await badge.waitFor({ timeout: 20_000 });
    await shot(bob, '08-unread-and-settings');
    await badge.click();
    await messageWith(bob, 'Are you there').waitFor();
    await bob.getByRole('link', { name: 'Project Falcon' }).waitFor({ timeout: 15_000 });

    // A reload keeps the session and the room.
    await alice.reload();
    await alice.getByRole('heading', { name: 'Project Falcon' }).waitFor();
    await messageWith(alice, 'Hello').waitFor();

    // Typing and read receipts travel over the stream.
    await bob.getByTestId('composer').fill('Typing something');
    await expect.poll(() => alice.getByTestId('typing').textContent(), { timeout: 15_000 }).toContain('bob is typing');
    await bob.getByTestId('composer').press('Enter');
    await expect.poll(() => alice.getByTestId('typing').textContent(), { timeout: 15_000 }).toBe('');
    await messageWith(alice, 'Typing something').waitFor();
    await sendMessage(alice, 'Did you read this?');
    await messageWith(bob, 'Did you read this?').waitFor({ timeout: 15_000 });
    await messageWith(alice, 'Did you read this?').getByTestId('seen-by').filter({ hasText: 'bob' }).waitFor({ timeout: 15_000 });

    // A dropped connection shows the banner; messages sent meanwhile arrive after it heals.
    link.drop();
    await alice.getByTestId('connection-banner').waitFor({ timeout: 40_000 });
    await shot(alice, '09-reconnecting');
    await sendMessage(bob, 'Sent while you were offline');
    link.restore();
    await alice.getByTestId('connection-banner').waitFor({ state: 'detached', timeout: 30_000 });
    await messageWith(alice, 'Sent while you were offline').waitFor({ timeout: 15_000 });

    // Phone width and dark theme.
    await alice.setViewportSize({ width: 390, height: 844 });
    await alice.emulateMedia({ colorScheme: 'dark' });
    await shot(alice, '10-phone-dark-room');
    await alice.getByRole('link', { name: 'Back to rooms' }).click();
    await shot(alice, '11-phone-dark-rooms');
    await alice.setViewportSize({ width: 1280, height: 800 });
    await alice.emulateMedia({ colorScheme: 'light' });

    // Devices: rename this session.
    await alice.goto(`${link.url}/settings`);
    await alice
      .getByRole('button', { name: /^Rename/ })
      .first()
      .click();
    await alice.getByLabel('Session name').fill('Laptop');
    await alice.getByRole('button', { name: 'Save' }).last().click();
    await alice.getByTestId('device').filter({ hasText: 'Laptop' }).waitFor();
    await shot(alice, '12-settings');

    // Directory: a public room shows up and Bob joins it from there.
    await alice.getByRole('link', { name: '+ New room' }).click();
    const form = alice.getByRole('form', { name: 'Create a room' });
    await form.getByLabel('Name', { exact: true }).fill('Town Square');
    await form.getByLabel(/Public: anyone/).check();
    await form.getByRole('button', { name: 'Create' }).click();
    await alice.waitForURL(/\/room\//);
    await bob.getByRole('link', { name: 'Explore' }).click();
    await bob.getByRole('listitem').filter({ hasText: 'Town Square' }).waitFor();
    await shot(bob, '13-directory');
    await bob.getByRole('listitem').filter({ hasText: 'Town Square' }).getByRole('button', { name: 'Join' }).click();
    await bob.getByRole('heading', { name: 'Town Square' }).waitFor();

    // Offline moments log failed fetches; anything else on the console is a bug.
    const unexpected = (errors: string[]) =>
      errors.filter(
        (e) => !/ERR_CONNECTION_(RESET|REFUSED|CLOSED)|ERR_EMPTY_RESPONSE|WebSocket connection to .* failed|Failed to fetch/.test(e),
      );
    expect(unexpected(aliceErrors)).toEqual([]);
    expect(unexpected(bobErrors)).toEqual([]);

    // Signing out ends the session and returns to the sign-in page.
    await bob.getByRole('link', { name: 'Settings' }).click();
    await bob.getByRole('button', { name: 'Sign out', exact: true }).click();
    await bob.waitForURL(/\/login/);
    await bob.reload();
    await bob.waitForURL(/\/login/);
  }
}
