import { MailboxClient } from '@parley/sdk';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../../homeserver/test/support/server.js';
import { adminSignIn, axe, ensureAppsBuilt, launch, openPage, shot } from './support.js';

// The admin console's Mailbox and Relay pages in Chromium against real homeservers: usage in
// aggregate (no queue or user named), limits, refusals; relay status, or the relay settings
// with "relay status not available" when the server cannot give it (federation off).

const PASSWORD = 'correct horse battery';
let server: TestServer;
let noFederation: TestServer;
let browser: Browser;
const ids: string[] = [];

beforeAll(async () => {
  ensureAppsBuilt();
  [server, noFederation] = await Promise.all([
    startTestServer({ mailbox: { block_bytes: 4096, queue_quota: 2, server_quota_bytes: 64 * 4096 }, relay: { enabled: true } }),
    startTestServer({ federation: { enabled: false } }),
  ]);
  browser = await launch();
  for (const s of [server, noFederation]) await s.services.accounts.createUser('root', PASSWORD, true);
  const mailbox = new MailboxClient();
  for (let q = 0; q < 3; q++) {
    const queue = await mailbox.createQueue(server.url);
    ids.push(queue.receiveId, queue.sendId);
    for (let i = 0; i < 2 - (q % 2); i++) await mailbox.send(server.url, queue.sendId, new TextEncoder().encode(`blob ${q}.${i}`));
  }
  // One refusal: the first queue is full.
  await mailbox.send(server.url, ids[1] as string, new Uint8Array(1)).catch(() => {});
});

afterAll(async () => {
  await browser?.close();
  await Promise.all([server?.close(), noFederation?.close()]);
});

async function signedIn(base: string, width = 1280, height = 800): Promise<{ page: Page; close: () => Promise<void>; errors: string[] }> {
  const { page, context, errors } = await openPage(browser, { width, height });
  await adminSignIn(page, base, 'root', PASSWORD);
  await page.getByRole('heading', { level: 1, name: 'Dashboard' }).waitFor();
  return { page, close: () => context.close(), errors };
}

describe('admin console: mailbox and relay', () => {
  it('the Mailbox page shows queues, blobs, bytes, quota use, limits and refusals, naming no queue', async () => {
    for (const [size, width, height] of [
      ['desktop', 1280, 800],
      ['phone', 390, 844],
    ] as const) {
      const { page, close, errors } = await signedIn(server.url, width, height);
      try {
        if (size === 'phone') await page.getByTestId('menu-toggle').click();
        await page.getByRole('link', { name: 'Mailbox' }).click();
        await page.getByRole('heading', { level: 1, name: 'Mailbox' }).waitFor();
        const usage = page.getByTestId('mailbox-usage');
        await usage.waitFor();
        const text = (await usage.textContent()) ?? '';
        expect(text).toContain('3queues');
        expect(text).toContain('5blobs stored');
        expect(text).toContain('20 KiBstored');
        expect(text).toContain('2full queues');
        expect(text).toContain('2 / 2fullest queue');
        expect(await page.getByTestId('mailbox-quota').textContent()).toContain('20 KiB of 256 KiB used (7.8 %)');
        expect(await page.getByTestId('mailbox-limits').textContent()).toContain('21.0 d');
        expect(await page.getByTestId('mailbox-refusals').textContent()).toMatch(/Queue full\s*1/);
        const all = (await page.textContent('body')) ?? '';
        for (const id of ids) expect(all).not.toContain(id);
        await shot(page, `admin-mailbox-${size}`);
        expect(await axe(page)).toEqual([]);
        expect(await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth)).toBeLessThanOrEqual(1);
        expect(errors).toEqual([]);
      } finally {
        await close();
      }
    }
  });

  it('the Relay page shows the relay view of GET /api/v1/admin/relay', async () => {
    const { page, close } = await signedIn(server.url);
    try {
      await page.getByRole('link', { name: 'Relay' }).click();
      await page.getByRole('heading', { level: 1, name: 'Relay' }).waitFor();
      await page.getByTestId('relay-state').waitFor();
      expect(await page.getByTestId('relay-state').textContent()).toMatch(/Serving as a relay: on · reserving on: no relay/);
      await page.getByTestId('relay-no-reservations').waitFor();
      expect(await page.getByTestId('relay-limits').textContent()).toContain('max_reservations');
      await shot(page, 'admin-relay-desktop');
      expect(await axe(page)).toEqual([]);
    } finally {
      await close();
    }
  });

  it('without relay status the Relay page says so and shows the relay settings', async () => {
    const { page, close } = await signedIn(noFederation.url);
    try {
      await page.goto(`${noFederation.url}/admin/relay`);
      await page.getByTestId('relay-unavailable').waitFor();
      expect(await page.getByTestId('relay-unavailable').textContent()).toMatch(/Relay status not available \(federation is off/);
      expect(await page.getByTestId('relay-settings').textContent()).toContain('relay.enabled');
      await shot(page, 'admin-relay-unavailable');
      expect(await axe(page)).toEqual([]);
    } finally {
      await close();
    }
  });
});
