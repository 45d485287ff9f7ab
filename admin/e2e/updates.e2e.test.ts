import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Browser } from 'playwright-core';
import { create as createTar } from 'tar';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { until } from '../../homeserver/test/support/net.js';
import { createReleaseRepository } from '../../homeserver/test/support/release-repo.js';
import { startTestServer, type TestServer } from '../../homeserver/test/support/server.js';
import { serveDir } from '../../homeserver/test/support/static-dir.js';
import { adminSignIn, axe, ensureAppsBuilt, launch, openPage, shot } from './support.js';

// The admin console's Updates page in Chromium: a server (not a mirror) checks a signed release
// through a hostile mirror (refused, shown) and the release site; the admin reads the release's
// version and notes, serves its web client bundle without a restart, and goes back.

const PASSWORD = 'correct horse battery';
const TITLE = 'Parley 0.5.0 from the signed release';
let work: string;
let server: TestServer;
let browser: Browser;
const sites: Array<{ close(): Promise<void> }> = [];

beforeAll(async () => {
  ensureAppsBuilt();
  work = await mkdtemp(path.join(tmpdir(), 'parley-admin-updates-'));
  const repoDir = path.join(work, 'repo');
  const { repo, keys } = await createReleaseRepository(repoDir, { trustedRoot: path.join(work, 'root.json') });
  await mkdir(path.join(work, 'src', 'dist'), { recursive: true });
  await writeFile(path.join(work, 'src', 'dist', 'index.html'), `<!doctype html><html lang="en"><title>${TITLE}</title></html>`);
  await createTar({ gzip: true, file: path.join(work, 'web.tgz'), cwd: path.join(work, 'src') }, ['dist']);
  const web = await readFile(path.join(work, 'web.tgz'));
  await repo.addTarget('client/parley-client.tgz', web, keys, Date.now(), {
    version: '0.5.0',
    notes: 'Faster timeline',
    kind: 'web-client',
  });
  await repo.addTarget('server/parley-server.tgz', Buffer.from('server'), keys, Date.now(), { version: '0.5.0', kind: 'server' });
  // The hostile mirror serves the same metadata with other bytes for the web client.
  const hostileDir = path.join(work, 'hostile');
  await mkdir(path.join(hostileDir, 'targets', 'client'), { recursive: true });
  await writeFile(path.join(hostileDir, 'targets', 'client', 'parley-client.tgz'), Buffer.alloc(web.length, 1));
  const site = await serveDir(() => repoDir);
  const hostile = await serveDir(
    () => hostileDir,
    (p, res) => {
      if (!p.startsWith('/metadata/')) return false;
      readFile(path.join(repoDir, p)).then(
        (b) => res.writeHead(200).end(b),
        () => res.writeHead(404).end(),
      );
      return true;
    },
  );
  sites.push(site, hostile);
  server = await startTestServer({
    updates: { mirror: false, upstreams: [hostile.url, site.url], trusted_root: path.join(work, 'root.json') },
  });
  await until(() => server.services.updates.mirror.lastSync !== null);
  await server.services.accounts.createUser('root', PASSWORD, true);
  browser = await launch();
});

afterAll(async () => {
  await browser?.close();
  await server?.close();
  for (const s of sites) await s.close();
  if (work) await rm(work, { recursive: true, force: true });
});

describe('admin console: updates', () => {
  it('shows the verified release with its notes and the refused mirror; serves its web client and goes back, no restart', async () => {
    const { page, context, errors } = await openPage(browser, { width: 1280, height: 800 });
    try {
      await adminSignIn(page, server.url, 'root', PASSWORD);
      await page.getByRole('heading', { level: 1, name: 'Dashboard' }).waitFor();
      await page.getByRole('link', { name: 'Updates' }).click();
      await page.getByRole('heading', { level: 1, name: 'Updates' }).waitFor();
      const row = page.getByTestId('release-table').getByRole('row', { name: /client\/parley-client\.tgz/ });
      await row.waitFor();
      expect(await row.textContent()).toMatch(/web-client.*0\.5\.0.*Faster timeline/);
      expect(await page.getByTestId('last-sync').textContent()).toContain('from http://127.0.0.1:');
      expect(await page.getByTestId('refused').textContent()).toContain('LengthOrHashMismatchError: Expected hash');
      // The server bundle is installed only with `parley update apply`: no button for it.
      expect(await page.getByTestId('serve-server/parley-server.tgz').count()).toBe(0);
      expect(await page.getByTestId('client-bundle').textContent()).toContain('built in');
      expect(await (await fetch(`${server.url}/`)).text()).not.toContain(TITLE);
      await shot(page, 'admin-updates-release');
      expect(await axe(page)).toEqual([]);

      await page.getByTestId('serve-client/parley-client.tgz').click();
      await page.getByTestId('client-builtin').waitFor();
      expect(await page.getByTestId('client-bundle').textContent()).toContain('client/parley-client.tgz');
      expect(await (await fetch(`${server.url}/`)).text()).toContain(TITLE);
      await shot(page, 'admin-updates-serving');

      await page.getByTestId('client-builtin').click();
      await page.getByTestId('client-bundle').getByText('built in').waitFor();
      expect(await (await fetch(`${server.url}/`)).text()).not.toContain(TITLE);
      expect(errors).toEqual([]);
    } finally {
      await context.close();
    }
  });
});
