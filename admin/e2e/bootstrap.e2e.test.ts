import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Federation, type FedServer, startFederation } from '../../homeserver/test/support/federation.js';
import { until } from '../../homeserver/test/support/net.js';
import { adminSignIn, axe, ensureAppsBuilt, launch, openPage, shot } from './support.js';

// The admin console's Bootstrap list page in Chromium against two federated homeservers: hs1
// announces itself, hs2 starts from hs1 as its seed. hs2's admin sees hs1 (pinned, as a
// configured seed), unpins and pins it, and prunes it; hs2 keeps pulling hs1's list every
// second, and the pruned entry stays out (its server signed nothing new since).

const PASSWORD = 'correct horse battery';
let fed: Federation;
let hs2: FedServer;
let browser: Browser;

beforeAll(async () => {
  ensureAppsBuilt();
  fed = await startFederation(['hs1.test', 'hs2.test'], {
    overrides: (name) => ({
      bootstrap: { announce: name === 'hs1.test', seeds: name === 'hs1.test' ? [] : ['hs1.test'], pull_interval_ms: 1000 },
    }),
  });
  hs2 = fed.byName('hs2.test');
  await hs2.running.services.accounts.createUser('root', PASSWORD, true);
  browser = await launch();
});

afterAll(async () => {
  await browser?.close();
  await fed?.close();
});

describe('admin console: bootstrap list', () => {
  it('shows the known servers, pins, unpins and prunes; a pruned entry stays out while its list is pulled again', async () => {
    await until(() => (hs2.running.services.bootstrap?.known() ?? []).some((e) => e.serverName === 'hs1.test'), 30_000);
    const { page, context, errors } = await openPage(browser, { width: 1280, height: 800 });
    try {
      await adminSignIn(page, hs2.url, 'root', PASSWORD);
      await page.getByRole('heading', { level: 1, name: 'Dashboard' }).waitFor();
      await page.getByRole('link', { name: 'Bootstrap' }).click();
      await page.getByRole('heading', { level: 1, name: 'Bootstrap list' }).waitFor();
      const table = page.getByTestId('bootstrap-table');
      const row = table.getByRole('row', { name: /hs1\.test/ });
      await row.waitFor();
      expect(await page.textContent('body')).toContain('Announcing: no');
      expect(await row.textContent()).toContain('pinned');

      await row.getByRole('button', { name: 'Unpin', exact: true }).click();
      await row.getByRole('button', { name: 'Pin', exact: true }).waitFor();
      expect(await row.textContent()).not.toContain('pinned');
      expect(hs2.running.services.bootstrap?.book.get('hs1.test')?.pinned).toBe(false);
      await row.getByRole('button', { name: 'Pin', exact: true }).click();
      await row.getByRole('button', { name: 'Unpin', exact: true }).waitFor();
      expect(hs2.running.services.bootstrap?.book.get('hs1.test')?.pinned).toBe(true);
      await shot(page, 'admin-bootstrap-entries');
      expect(await axe(page)).toEqual([]);

      // Prune takes two clicks.
      await page.getByTestId('prune-hs1.test').click();
      await page.getByTestId('prune-hs1.test').click();
      await page.getByText('No servers known yet.').waitFor();
      expect(hs2.running.services.bootstrap?.book.get('hs1.test')).toBeUndefined();
      // hs1 is hs2's seed: hs2 asks it for its list every second, and the list names hs1.
      await new Promise((r) => setTimeout(r, 4000));
      await page.reload();
      await page.getByText('No servers known yet.').waitFor();
      expect(await table.getByRole('row', { name: /hs1\.test/ }).count()).toBe(0);
      expect(errors).toEqual([]);
    } finally {
      await context.close();
    }
  });
});
