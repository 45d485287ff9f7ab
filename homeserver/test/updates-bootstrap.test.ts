import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { FALLBACK_LIST_TARGET } from '../src/updates/mirror.js';
import { startFederation } from './support/federation.js';
import { until } from './support/net.js';
import { createReleaseRepository } from './support/release-repo.js';
import { serveDir } from './support/static-dir.js';

const TARGET = 'client/parley-client.tgz';

/** A 1-of-1 release repository in `dir`/repo with one file, and its root in `dir`/root.json. */
async function oneKeyRepository(dir: string) {
  const { repo, keys } = await createReleaseRepository(path.join(dir, 'repo'), { trustedRoot: path.join(dir, 'root.json') });
  await repo.addTarget(TARGET, Buffer.from('bundle via bootstrap'), keys, Date.now());
  return { repo, keys };
}

describe('mirrors found through bootstrap lists', () => {
  it('a server with no upstream syncs from a mirror it learned of in the bootstrap list, over federation', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'parley-updates-bootstrap-'));
    await oneKeyRepository(dir);
    const site = await serveDir(() => path.join(dir, 'repo'));
    const fed = await startFederation(['m1.test', 'm2.test'], {
      overrides: (name) => ({
        updates: { mirror: true, upstreams: name === 'm1.test' ? [site.url] : [], trusted_root: path.join(dir, 'root.json') },
        bootstrap:
          name === 'm1.test'
            ? { announce: true, capabilities: ['mirror'], pull_interval_ms: 1000 }
            : { seeds: ['m1.test'], pull_interval_ms: 1000 },
      }),
    });
    try {
      const [m1, m2] = fed.servers as [(typeof fed.servers)[0], (typeof fed.servers)[0]];
      await until(() => m1.running.services.updates.mirror.lastSync !== null);
      await until(() => m2.running.services.updates.sources().includes('parley-fed://m1.test/updates'), 20_000);
      expect(await m2.running.services.updates.check()).toBe(true);
      expect(m2.running.services.updates.mirror.lastSync?.source).toBe('parley-fed://m1.test/updates');
      const served = await fetch(`${m2.url}/updates/targets/${TARGET}`);
      expect(await served.text()).toBe('bundle via bootstrap');
    } finally {
      await fed.close();
      await site.close();
      await rm(dir, { recursive: true, force: true });
    }
  }, 60_000);

  it('the bootstrap fallback list comes with a release: a server that knows nobody learns servers from it', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'parley-updates-fallback-'));
    const { repo, keys } = await oneKeyRepository(dir);
    const site = await serveDir(() => path.join(dir, 'repo'));
    // f1 announces; f2 has no seeds and no fallback_list file, and checks releases without mirroring them.
    const fed = await startFederation(['f1.test', 'f2.test'], {
      overrides: (name) =>
        name === 'f1.test'
          ? { bootstrap: { announce: true, pull_interval_ms: 1000 } }
          : {
              bootstrap: { seeds: [], pull_interval_ms: 1000 },
              updates: { mirror: false, upstreams: [site.url], trusted_root: path.join(dir, 'root.json') },
            },
    });
    try {
      const [f1, f2] = fed.servers as [(typeof fed.servers)[0], (typeof fed.servers)[0]];
      const known = () => (f2.running.services.bootstrap?.known() ?? []).map((e) => `${e.serverName} from ${e.source}`);
      await until(() => f2.running.services.updates.mirror.lastSync !== null);
      expect(known()).toEqual([]);
      // The release manager signs a fallback list naming f1 (its own signed descriptor) into the release.
      const list = { descriptors: [f1.running.services.bootstrap?.ownDescriptor()] };
      await repo.addTarget(FALLBACK_LIST_TARGET, Buffer.from(JSON.stringify(list)), keys, Date.now(), { kind: 'bootstrap-fallback' });
      expect(await f2.running.services.updates.check()).toBe(true);
      await until(() => known().length > 0, 20_000);
      expect(known()).toEqual(['f1.test from fallback']);
      // f2 verified the release for itself but does not serve it.
      expect((await fetch(`${f2.url}/updates/metadata/timestamp.json`)).status).toBe(404);
    } finally {
      await fed.close();
      await site.close();
      await rm(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
