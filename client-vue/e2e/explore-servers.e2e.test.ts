import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Federation, type FedServer, startFederation } from '../../homeserver/test/support/federation.js';
import { until } from '../../homeserver/test/support/net.js';
import { ensureClientBuilt, launch, openPage, shot, signUpInBrowser, unexpectedConsole } from './support.js';

// The Explore page lists servers known from bootstrap lists (only those that announce
// themselves: hs3 reads the lists but does not announce, so it is never shown) and shows each
// one's public rooms, fetched over federation.

let fed: Federation;
let hs1: FedServer;
let hs2: FedServer;
let hs3: FedServer;
let browser: Browser;

beforeAll(async () => {
  ensureClientBuilt();
  fed = await startFederation(['hs1.test', 'hs2.test', 'hs3.test'], {
    overrides: (name) => ({
      bootstrap: { announce: name !== 'hs3.test', seeds: name === 'hs1.test' ? [] : ['hs1.test'], pull_interval_ms: 1000 },
    }),
  });
  [hs1, hs2, hs3] = fed.servers as [FedServer, FedServer, FedServer];
  browser = await launch();
});

afterAll(async () => {
  await browser?.close();
  await fed?.close();
});

describe('Explore: servers from the bootstrap list and their public rooms', () => {
  it('shows hs2 on hs1, and hs2’s public rooms when it is picked', async () => {
    const carol = await hs2.user('carol');
    await carol.rooms.create({ visibility: 'public', name: 'Gardening on hs2', topic: 'Tomatoes and more' });
    await until(() => (hs1.running.services.bootstrap?.known() ?? []).some((e) => e.serverName === 'hs2.test'), 30_000);
    // hs3 has gossiped (pulled lists from hs1 and hs2) by the time hs1 is looked at.
    await until(() => (hs3.running.services.bootstrap?.known() ?? []).length === 2, 30_000);

    // Console errors as openPage collects them (the E2E API's "none yet" 404s are expected).
    const { page, errors } = await openPage(browser);
    await signUpInBrowser(page, 'alice', hs1.url);
    await page.getByRole('link', { name: 'Explore' }).first().click();
    const servers = page.getByRole('navigation', { name: 'Servers' });
    await servers.getByRole('button', { name: 'hs2.test' }).click();
    expect((await servers.getByRole('button').allTextContents()).map((t) => t.trim()).sort()).toEqual(['hs1.test', 'hs2.test']);
    await page.getByText('Gardening on hs2').waitFor({ timeout: 20_000 });
    await expect(page.getByText('Tomatoes and more').isVisible()).resolves.toBe(true);
    expect(await servers.getByRole('button', { name: 'hs2.test' }).getAttribute('aria-pressed')).toBe('true');
    await shot(page, '60-explore-servers');
    expect(unexpectedConsole(errors)).toEqual([]);
  });
});
