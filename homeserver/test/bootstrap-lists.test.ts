import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Federation, type FedServer, startFederation } from './support/federation.js';
import { until } from './support/net.js';

const NAMES = ['hs1.test', 'hs2.test', 'hs3.test', 'hs4.test', 'hs5.test'];
const ANNOUNCING = new Set(['hs1.test', 'hs2.test', 'hs3.test']);

/**
 * Five real servers over TLS on loopback, three of which announce themselves. Every server
 * (announcing or not) ends up knowing exactly the three announcing ones, with verified
 * descriptors, and the two silent ones appear in no list anywhere although they gossip.
 */
describe('bootstrap node lists across five servers', () => {
  let fed: Federation;
  const known = (s: FedServer) => (s.running.services.bootstrap?.known() ?? []).map((e) => e.serverName).sort();
  const expected = (self: string) => [...ANNOUNCING].filter((n) => n !== self).sort();

  beforeAll(async () => {
    fed = await startFederation(NAMES, {
      overrides: (name) => ({
        bootstrap: {
          announce: ANNOUNCING.has(name),
          // The first server to start has no seed; every later one starts from it.
          seeds: name === 'hs1.test' ? [] : ['hs1.test'],
          pull_interval_ms: 1000,
          feeler_interval_ms: 1000,
        },
        // Servers start one after another: a seed not up yet must not stay refused for the
        // default five minutes of the key store's failure cache.
        federation: { remote_key_fetch: { failure_cache_ms: 1000 } },
      }),
    });
  });
  afterAll(async () => {
    await fed?.close();
  });

  it('every server comes to know exactly the announcing servers', async () => {
    const t0 = Date.now();
    await until(() => fed.servers.every((s) => JSON.stringify(known(s)) === JSON.stringify(expected(s.name))), 45_000);
    console.log(`bootstrap convergence, 5 servers (3 announcing): ${Date.now() - t0} ms after the last start`);
    for (const s of fed.servers) expect(known(s)).toEqual(expected(s.name));
  }, 60_000);

  it('a silent server publishes no descriptor and is in no list, even after it gossiped', async () => {
    const asker = fed.byName('hs2.test').running.federation?.context.client;
    for (const name of NAMES) {
      const answer = await asker
        ?.request({ destination: name, method: 'GET', path: '/federation/v1/bootstrap/descriptor' })
        .catch((e: Error) => e);
      if (ANNOUNCING.has(name)) expect((answer as { body: { server_name: string } }).body.server_name).toBe(name);
      else expect(String(answer)).toMatch(/404|does not announce/);
      if (name === 'hs2.test') continue;
      const list = (await asker?.request({ destination: name, method: 'GET', path: '/federation/v1/bootstrap/list' })) as {
        body: { descriptors: Array<{ server_name: string }> };
      };
      const listed = list.body.descriptors.map((d) => d.server_name);
      expect(listed).not.toContain('hs4.test');
      expect(listed).not.toContain('hs5.test');
    }
  });

  it('a restarted server starts from its cache and anchors, without its seed', async () => {
    const hs1 = fed.byName('hs1.test');
    const hs3 = fed.byName('hs3.test');
    await hs1.stop(); // hs3's only seed
    await hs3.stop();
    await hs3.start();
    await until(() => known(hs3).includes('hs2.test'), 20_000);
    const anchors = hs3.running.services.bootstrap?.book.anchors() ?? [];
    expect(anchors.length).toBeGreaterThan(0);
    expect(anchors.every((a) => ANNOUNCING.has(a))).toBe(true);
    await hs1.start();
  }, 60_000);

  it('admins see, pin and prune the list; others are refused', async () => {
    const hs2 = fed.byName('hs2.test');
    const { ParleyClient } = await import('@parley/sdk');
    // An admin made through the accounts service, as `parley user create --admin` does.
    await hs2.running.services.accounts.createUser('root', 'root password', true);
    const admin = new ParleyClient({ baseUrl: hs2.url });
    await admin.login({ username: 'root', password: 'root password' });
    const listing = (await admin.request('GET', '/api/v1/admin/bootstrap')) as {
      announce: boolean;
      servers: Array<{ server_name: string; pinned: boolean }>;
    };
    expect(listing.announce).toBe(true);
    expect(listing.servers.map((s) => s.server_name).sort()).toEqual(['hs1.test', 'hs3.test']);
    await admin.request('PUT', '/api/v1/admin/bootstrap/hs3.test/pin', { pinned: true });
    expect(hs2.running.services.bootstrap?.book.get('hs3.test')?.pinned).toBe(true);
    await admin.request('DELETE', '/api/v1/admin/bootstrap/hs1.test');
    expect(hs2.running.services.bootstrap?.book.get('hs1.test')).toBeUndefined();
    await expect(admin.request('PUT', '/api/v1/admin/bootstrap/hs3.test/pin', { pinned: 'yes' })).rejects.toMatchObject({ status: 400 });

    const user = await hs2.user('someone');
    await expect(user.client.request('GET', '/api/v1/admin/bootstrap')).rejects.toMatchObject({ status: 403 });
    const servers = (await user.client.request('GET', '/api/v1/directory/servers')) as { servers: Array<{ server_name: string }> };
    expect(servers.servers.map((s) => s.server_name)).toContain('hs3.test');
  });
});
