import { RoomsApi } from '@parley/sdk';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../../homeserver/test/support/server.js';
import { adminSignIn, axe, ensureAppsBuilt, launch, openPage, shot } from './support.js';

// Issue 15, end to end: an admin runs the server from the console in real Chromium against
// a real homeserver (one per file) serving the built web client and the built console.

let server: TestServer;
let browser: Browser;
let roomId: string;
const PASSWORD = 'correct horse battery';

async function login(username: string, password = PASSWORD): Promise<number> {
  const res = await fetch(`${server.url}/api/v1/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username, password }),
  });
  return res.status;
}

/** Signs `username` in to the web client through its login form. */
async function clientSignIn(page: Page, username: string): Promise<void> {
  await page.goto(`${server.url}/login`);
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

/** alice, in the web client in a new browser context, opens the report dialog on the spammer's message. */
async function aliceOpensSpamReport() {
  const { page, context } = await openPage(browser);
  await clientSignIn(page, 'alice');
  await page.getByRole('link', { name: /Town square/ }).click();
  const spam = page.getByTestId('message').filter({ hasText: 'BUY CHEAP PILLS' }).last();
  await spam.hover();
  await spam.getByTestId('report-open').click();
  return { page, context, dialog: page.getByTestId('report-dialog') };
}

beforeAll(async () => {
  ensureAppsBuilt();
  server = await startTestServer();
  browser = await launch();
  await server.services.accounts.createUser('root', PASSWORD, true);
  const alice = server.client();
  await alice.register({ username: 'alice', password: PASSWORD });
  const spammer = server.client();
  await spammer.register({ username: 'spammer', password: PASSWORD });
  const forgetful = server.client();
  await forgetful.register({ username: 'forgetful', password: PASSWORD });
  ({ room_id: roomId } = await new RoomsApi(alice).create({ name: 'Town square', visibility: 'public' }));
  await new RoomsApi(spammer).join(roomId);
  await new RoomsApi(alice).sendText(roomId, 'welcome everyone');
  await new RoomsApi(spammer).sendText(roomId, 'BUY CHEAP PILLS at pills.example');
});

afterAll(async () => {
  await browser?.close();
  await server?.close();
});

describe('the admin console', () => {
  it('is served at /admin/ with its own CSP; client routes and server paths stay apart', async () => {
    const res = await fetch(`${server.url}/admin/users`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-security-policy')).toContain("connect-src 'self'");
    expect(await res.text()).toContain('<div id="app">');
    const missing = await fetch(`${server.url}/admin/assets/gone-1.js`);
    expect(missing.status).toBe(404);
    expect((await fetch(`${server.url}/admin`, { redirect: 'manual' })).headers.get('location')).toBe('/admin/');
  });

  it('a user reports a spam message from the web client', async () => {
    const { page, context, dialog } = await aliceOpensSpamReport();
    await dialog.getByTestId('report-reason').fill('Spam: selling pills to everyone');
    await shot(page, 'admin-client-report-dialog');
    await dialog.getByTestId('report-send').click();
    await dialog.getByTestId('report-sent').waitFor();
    await context.close();
  });

  it('a non-admin is refused: the console shows "Not an admin" and the API answers 403', async () => {
    for (const [name, width, height] of [
      ['desktop', 1280, 800],
      ['phone', 390, 844],
    ] as const) {
      const { page, context } = await openPage(browser, { width, height });
      await adminSignIn(page, server.url, 'alice', PASSWORD);
      await page.getByTestId('not-admin').waitFor();
      await expect.poll(() => page.getByRole('heading', { name: 'Not an admin' }).isVisible()).toBe(true);
      await page.goto(`${server.url}/admin/users`);
      await page.getByTestId('not-admin').waitFor();
      await shot(page, `admin-not-admin-${name}`);
      expect(await axe(page)).toEqual([]);
      const token = await page.evaluate(() => JSON.parse(localStorage.getItem('parley.admin.session.v1') ?? '{}').access_token);
      expect((await fetch(`${server.url}/api/v1/admin/users`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(403);
      await context.close();
    }
  });

  let admin: Page;
  let adminErrors: string[];

  it('an admin signs in and sees the dashboard with charts', async () => {
    const opened = await openPage(browser);
    admin = opened.page;
    adminErrors = opened.errors;
    await admin.goto(`${server.url}/admin/`);
    await admin.getByTestId('login-username').waitFor();
    await shot(admin, 'admin-login-desktop');
    await adminSignIn(admin, server.url, 'root', PASSWORD);
    await admin.getByRole('heading', { name: 'Dashboard' }).waitFor();
    for (const id of ['chart-users', 'chart-messages', 'chart-federation', 'chart-queue']) {
      const canvas = admin.getByTestId(id).locator('canvas');
      await canvas.waitFor();
      // chart.js drew into it (a canvas it never touched has no chart instance).
      await expect.poll(() => canvas.evaluate((c: HTMLCanvasElement) => c.width > 0 && c.height > 0)).toBe(true);
    }
    await expect.poll(() => admin.getByTestId('stats').textContent()).toMatch(/4\s*users/);
  });

  it('finds a user and resets their password', async () => {
    await admin.getByTestId('nav-users').click();
    await admin.getByTestId('user-search').fill('forget');
    await admin.getByTestId('user-search-submit').click();
    await expect.poll(() => admin.getByTestId('user-row').count()).toBe(1);
    await admin.getByRole('link', { name: '@forgetful:hs1.test' }).click();
    await admin.getByTestId('user-title').waitFor();
    await admin.getByTestId('reset-password-input').fill('a brand new password');
    await admin.getByTestId('reset-password').click();
    await admin.getByTestId('status').filter({ hasText: 'Password reset' }).waitFor();
    expect(await login('forgetful', 'a brand new password')).toBe(200);
    expect(await login('forgetful', PASSWORD)).toBe(401);
  });

  it('handles the report from the web client: assigns it, deactivates the spammer, resolves it', async () => {
    await admin.getByTestId('nav-reports').click();
    const report = admin.getByTestId('report').first();
    await expect.poll(() => report.getByTestId('report-message').textContent()).toContain('BUY CHEAP PILLS');
    expect(await report.getByTestId('report-reason').textContent()).toContain('selling pills');
    await report.getByTestId('assign-me').click();
    await expect.poll(() => report.textContent()).toContain('Assigned to @root:hs1.test');

    await report.getByTestId('report-target').click();
    await admin.getByTestId('user-title').filter({ hasText: '@spammer:hs1.test' }).waitFor();
    await admin.getByTestId('deactivate').click();
    await admin.getByTestId('deactivate').click(); // confirm
    await admin.getByTestId('user-deactivated').waitFor();
    // The job that takes the spammer out of their rooms shows its progress, then finishes.
    await admin.getByTestId('job-done').waitFor();
    expect(await login('spammer')).toBe(403);
    expect(await server.services.roomRepo.membership(roomId, '@spammer:hs1.test')).toBe('leave');

    await admin.getByTestId('nav-reports').click();
    await admin.getByTestId('resolution').first().fill('Spammer deactivated');
    await admin.getByTestId('resolve').first().click();
    await admin.getByTestId('no-reports').waitFor();
    await expect.poll(() => admin.getByTestId('report-figures').textContent()).toMatch(/1\s*resolved/);
  });

  it('blocks a domain and undoes it in one step', async () => {
    await admin.getByTestId('nav-federation').click();
    await admin.getByTestId('policy-domain').fill('pills.example');
    await admin.getByTestId('policy-add').click();
    await admin.getByTestId('policy-row').filter({ hasText: 'pills.example' }).waitFor();
    expect(server.services.admin.domains.refusal('pills.example')).toMatch(/blocked/);
    expect(server.services.admin.domains.refusal('chat.pills.example:8448')).toMatch(/blocked/);
    await shot(admin, 'admin-federation-blocked-desktop');
    await admin.getByTestId('undo-last').click();
    await admin.getByTestId('status').filter({ hasText: 'Undone' }).waitFor();
    expect(await admin.getByTestId('policy-row').count()).toBe(0);
    expect(server.services.admin.domains.refusal('pills.example')).toBeUndefined();
  });

  it('reads the audit log, filtered', async () => {
    await admin.getByTestId('nav-audit').click();
    await expect.poll(() => admin.getByTestId('audit-row').count()).toBeGreaterThanOrEqual(6);
    await admin.getByTestId('audit-action').fill('federation.');
    await admin.getByTestId('audit-filter').click();
    await expect
      .poll(() => admin.getByTestId('audit-row').locator('code').allTextContents())
      .toEqual(['federation.undo', 'federation.block']);
    const all = (await (
      await fetch(`${server.url}/api/v1/admin/audit?limit=50`, {
        headers: {
          authorization: `Bearer ${await admin.evaluate(() => JSON.parse(localStorage.getItem('parley.admin.session.v1') ?? '{}').access_token)}`,
        },
      })
    ).json()) as { entries: Array<{ action: string }> };
    expect(all.entries.map((e) => e.action)).toEqual(
      expect.arrayContaining([
        'user.reset_password',
        'report.assign',
        'user.deactivate',
        'report.resolve',
        'federation.block',
        'federation.undo',
      ]),
    );
  });

  it('every page, desktop and phone: screenshots and no serious accessibility violations', async () => {
    const token = await admin.evaluate(() => localStorage.getItem('parley.admin.session.v1'));
    const pages: Array<[string, string, string]> = [
      ['dashboard', '/admin/', 'Dashboard'],
      ['users', '/admin/users', 'Users'],
      ['user', '/admin/users/@spammer:hs1.test', '@spammer:hs1.test'],
      ['tokens', '/admin/tokens', 'Registration tokens'],
      ['rooms', '/admin/rooms', 'Rooms'],
      ['room', `/admin/rooms/${roomId}`, 'Town square'],
      ['reports', '/admin/reports', 'Reports'],
      ['media', '/admin/media', 'Media'],
      ['federation', '/admin/federation', 'Federation'],
      ['bootstrap', '/admin/bootstrap', 'Bootstrap list'],
      ['updates', '/admin/updates', 'Updates'],
      ['mailbox', '/admin/mailbox', 'Mailbox'],
      ['relay', '/admin/relay', 'Relay'],
      ['settings', '/admin/settings', 'Settings'],
      ['audit', '/admin/audit', 'Audit log'],
    ];
    const found: Record<string, unknown> = {};
    for (const [size, width, height] of [
      ['desktop', 1280, 800],
      ['phone', 390, 844],
    ] as const) {
      const { page, context } = await openPage(browser, { width, height });
      await page.goto(`${server.url}/admin/login`);
      await page.evaluate((t) => localStorage.setItem('parley.admin.session.v1', t as string), token);
      for (const [name, path, heading] of pages) {
        await page.goto(`${server.url}${path}`);
        await page.getByRole('heading', { level: 1, name: heading }).waitFor();
        await page.waitForLoadState('networkidle');
        // Empty tables say so (nobody made a token or uploaded a file here).
        if (name === 'tokens' || name === 'media') await page.getByTestId(`no-${name}`).waitFor();
        await shot(page, `admin-${name}-${size}`);
        const violations = await axe(page);
        if (violations.length > 0) found[`${name}-${size}`] = violations;
        // Nothing wider than the screen except inside scrolling tables.
        const overflow = await page.evaluate(() => ({
          by: document.documentElement.scrollWidth - window.innerWidth,
          // Which elements stick out, to name them when this fails.
          wide: [...document.querySelectorAll('body *')]
            .filter((el) => el.getBoundingClientRect().right > window.innerWidth + 1 && !el.closest('.table-wrap'))
            .slice(0, 5)
            .map((el) => `${el.tagName.toLowerCase()}.${el.className}`),
        }));
        expect(overflow.by, `${name} at ${size} width: ${overflow.wide.join(', ')}`).toBeLessThanOrEqual(1);
      }
      if (size === 'phone') {
        await page.getByTestId('menu-toggle').click();
        await page.getByTestId('nav-reports').waitFor();
        await shot(page, 'admin-menu-phone');
      }
      await context.close();
    }
    expect(found).toEqual({});
    expect(adminErrors.filter((e) => !/401|403|Failed to load resource/.test(e))).toEqual([]);
  });

  it("a user reports other users from the web client (a message's sender, a room member); the queue shows user reports", async () => {
    const { page, context, dialog } = await aliceOpensSpamReport();
    await dialog.getByTestId('report-kind-user').check();
    await dialog.getByTestId('report-reason').fill('Sends spam to every room');
    await shot(page, 'admin-client-report-user-dialog');
    await dialog.getByTestId('report-send').click();
    await dialog.getByTestId('report-sent').waitFor();
    await dialog.getByRole('button', { name: 'Close' }).click();

    // Someone who never wrote anything is reported from the room's members panel.
    const lurker = server.client();
    await lurker.login({ username: 'forgetful', password: 'a brand new password' });
    await new RoomsApi(lurker).join(roomId);
    await page.getByTestId('members-toggle').click();
    const row = page.getByTestId('member-list').locator('li').filter({ hasText: '@forgetful:hs1.test' });
    await row.getByRole('button', { name: 'Report @forgetful:hs1.test' }).click();
    const open = page.locator('dialog[open][data-testid="report-dialog"]');
    await open.getByTestId('report-reason').fill('Creepy display name');
    expect(await open.getByTestId('report-kind-message').count()).toBe(0);
    await shot(page, 'admin-client-report-member-dialog');
    await open.getByTestId('report-send').click();
    await open.getByTestId('report-sent').waitFor();
    await context.close();

    await admin.getByTestId('nav-reports').click();
    const report = admin.getByTestId('report').filter({ hasText: 'Sends spam to every room' });
    await report.waitFor();
    expect(await report.textContent()).toMatch(/User/);
    expect(await report.getByTestId('report-target').textContent()).toBe('@spammer:hs1.test');
    expect(await report.getByTestId('report-message').count()).toBe(0);
    const member = admin.getByTestId('report').filter({ hasText: 'Creepy display name' });
    expect(await member.getByTestId('report-target').textContent()).toBe('@forgetful:hs1.test');
    await shot(admin, 'admin-reports-open-desktop');
  });

  it('shuts down a room with progress', async () => {
    await admin.goto(`${server.url}/admin/rooms/${roomId}`);
    await admin.getByRole('heading', { level: 1, name: 'Town square' }).waitFor();
    await admin.getByTestId('shutdown-room').click();
    await admin.getByTestId('shutdown-room').click();
    await admin.getByTestId('room-job').getByRole('progressbar').waitFor();
    await admin.getByTestId('status').filter({ hasText: 'shut down' }).waitFor();
    await admin.getByTestId('room-blocked').waitFor();
    expect(await server.services.roomRepo.membership(roomId, '@alice:hs1.test')).toBe('leave');
    await shot(admin, 'admin-room-shutdown-desktop');
  });
  it('imports a blocklist as a job with progress, then undoes the whole import in one step', async () => {
    await admin.goto(`${server.url}/admin/federation`);
    await admin.getByRole('heading', { level: 1, name: 'Federation' }).waitFor();
    await admin.getByTestId('import-data').fill('domain,kind,reason\na.example,block,spam\nb.example,block,\nc.example,suspend,');
    await admin.getByTestId('import').click();
    await admin.getByTestId('job-done').filter({ hasText: 'Importing domain policies' }).getByRole('progressbar').waitFor();
    await expect.poll(() => admin.getByTestId('policy-row').count()).toBe(3);
    expect(server.services.admin.domains.refusal('chat.b.example')).toMatch(/blocked/);
    await shot(admin, 'admin-federation-import-desktop');
    await admin.getByTestId('undo-last').click();
    await admin.getByTestId('status').filter({ hasText: 'Undone' }).waitFor();
    await expect.poll(() => admin.getByTestId('policy-row').count()).toBe(0);
    for (const d of ['a.example', 'b.example', 'c.example']) expect(server.services.admin.domains.refusal(d)).toBeUndefined();
  });

  it('the web client shows admins (only) a link to the console in Settings', async () => {
    for (const [user, expected] of [
      ['root', 1],
      ['alice', 0],
    ] as const) {
      const { page, context } = await openPage(browser);
      await clientSignIn(page, user);
      await page.waitForURL((url) => !url.pathname.startsWith('/login'));
      await page.goto(`${server.url}/settings`);
      await page.getByRole('heading', { name: 'Sessions' }).waitFor();
      if (expected) {
        const link = page.getByTestId('admin-console-link');
        await link.waitFor();
        expect(await link.getAttribute('href')).toBe(`${server.url}/admin/`);
        await link.scrollIntoViewIfNeeded();
        await shot(page, 'admin-client-settings-link');
      } else {
        // whoami answered (the Account card renders after it): still no link.
        await page.waitForLoadState('networkidle');
        expect(await page.getByTestId('admin-console-link').count()).toBe(0);
      }
      await context.close();
    }
  });
});
