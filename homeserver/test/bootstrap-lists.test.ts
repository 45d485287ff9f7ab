import { sign } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { buildDescriptor, verifyDescriptor } from '@parley/federation/bootstrap';
import { canonicalJson } from '@parley/federation/canonical';
import { keyRingOf, type SigningKey } from '@parley/federation/keys';
import type { BootstrapDescriptor } from '@parley/schemas';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../src/logger.js';
import { RelayFallbackService } from '../src/relay/fallback.js';
import { type Federation, type FedServer, startFederation } from './support/federation.js';
import { until } from './support/net.js';

const NAMES = ['hs1.test', 'hs2.test', 'hs3.test', 'hs4.test', 'hs5.test'];
const ANNOUNCING = new Set(['hs1.test', 'hs2.test', 'hs3.test']);
const DAY = 86_400_000;
const FALLBACK = path.join(tmpdir(), `parley-bootstrap-fallback-${process.pid}-${Date.now()}.json`);

/** A descriptor body signed by `key` under the name it carries (whoever `key` belongs to). */
function signAs(body: Omit<BootstrapDescriptor, 'signatures'>, key: SigningKey): BootstrapDescriptor {
  const sig = sign(null, Buffer.from(canonicalJson(body, 'descriptor')), key.privateKey).toString('base64url');
  return { ...body, signatures: { [body.server_name]: { [`ed25519:${key.keyId}`]: sig } } } as BootstrapDescriptor;
}

/**
 * Five real servers over TLS on loopback, three of which announce themselves. hs2–hs4 start
 * from hs1 as their seed; hs5 has no seed at all and finds the network through the fallback
 * list file. Every server (announcing or not) ends up knowing exactly the three announcing
 * ones, with descriptors that verify under each one's real key, and the two silent ones appear
 * in no list anywhere although they gossip.
 */
describe('bootstrap node lists across five servers', () => {
  let fed: Federation;
  let firstStart = 0;
  let lastStart = 0;
  const known = (s: FedServer) => (s.running.services.bootstrap?.known() ?? []).map((e) => e.serverName).sort();
  const expected = (self: string) => [...ANNOUNCING].filter((n) => n !== self).sort();
  const book = (s: FedServer) => {
    const b = s.running.services.bootstrap;
    if (!b) throw new Error(`${s.name} has no bootstrap service`);
    return b;
  };

  beforeAll(async () => {
    firstStart = Date.now();
    fed = await startFederation(NAMES, {
      overrides: (name) => ({
        bootstrap: {
          announce: ANNOUNCING.has(name),
          // The first server to start has no seed; hs5 has none either (it has the fallback list).
          seeds: name === 'hs1.test' || name === 'hs5.test' ? [] : ['hs1.test'],
          fallback_list: name === 'hs5.test' ? FALLBACK : null,
          pull_interval_ms: 1000,
          feeler_interval_ms: 1000,
        },
        // hs3 is an anchor relay: its descriptor offers `relay` (all offer `mailbox`, on by default).
        relay: { enabled: name === 'hs3.test' },
        // Servers start one after another: a seed not up yet must not stay refused for the
        // default five minutes of the key store's failure cache.
        federation: { remote_key_fetch: { failure_cache_ms: 1000 } },
      }),
    });
    // The release's fallback list: hs1's descriptor, as a release manager would ship it. hs5
    // started before it existed (and knows nobody); restarted, it starts from it.
    const hs5 = fed.byName('hs5.test');
    expect(known(hs5)).toEqual([]);
    await writeFile(FALLBACK, JSON.stringify({ descriptors: [book(fed.byName('hs1.test')).ownDescriptor()] }));
    await hs5.stop();
    await hs5.start();
    lastStart = Date.now();
  }, 120_000);
  afterAll(async () => {
    await fed?.close();
  });

  it('every server comes to know exactly the announcing servers, with descriptors signed by their keys', async () => {
    // When each server first knew exactly the announcing ones (ms after the last start).
    const done = new Map<string, number>();
    await until(() => {
      for (const s of fed.servers)
        if (!done.has(s.name) && JSON.stringify(known(s)) === JSON.stringify(expected(s.name))) done.set(s.name, Date.now() - lastStart);
      return done.size === fed.servers.length;
    }, 45_000);
    const t = Date.now();
    console.log(
      `bootstrap convergence, 5 servers (3 announcing, hs5 from the fallback list): ${t - lastStart} ms after the last start, ` +
        `${t - firstStart} ms after the first (servers started one after another, hs5 twice); ` +
        `each: ${[...done].map(([n, ms]) => `${n} ${ms} ms`).join(', ')}`,
    );
    const keys = Object.fromEntries(
      fed.servers.map((s) => [s.name, { [s.running.services.identity.keyId]: s.running.services.identity.publicKey }]),
    );
    for (const s of fed.servers) {
      expect(known(s)).toEqual(expected(s.name));
      for (const e of book(s).known()) expect(verifyDescriptor(e.descriptor, keyRingOf(keys), Date.now())).toMatchObject({ ok: true });
    }
    expect(book(fed.byName('hs5.test')).book.get('hs1.test')?.source).toBe('fallback');
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
      expect(listed.filter((n) => !ANNOUNCING.has(n))).toEqual([]);
      expect(listed).not.toContain('hs4.test');
      expect(listed).not.toContain('hs5.test');
    }
  });

  it('pushed by a peer: forged, re-signed, expired and future refused, replays ignored, a renewal taken and passed on, a budget per peer', async () => {
    const hs1 = fed.byName('hs1.test');
    const hs2 = fed.byName('hs2.test');
    const hs4 = fed.byName('hs4.test');
    const held = book(hs2).book.get('hs1.test')?.descriptor as BootstrapDescriptor;
    const { signatures: _s, ...body } = held;
    const now = Date.now();
    const hs1Key = hs1.running.services.identity;
    const announce = async (descriptors: unknown[], hops = 0, from = hs4) => {
      const client = from.running.federation?.context.client;
      if (!client) throw new Error(`${from.name} has no federation client`);
      const res = await client.request({
        destination: 'hs2.test',
        method: 'POST',
        path: '/federation/v1/bootstrap/announce',
        body: { descriptors, hops },
      });
      return res.body as { accepted: number; refused: number; over_budget: number };
    };

    // Each newer than the descriptor hs2 holds, so none is skipped as a replay before its check.
    const forged = { ...held, issued_ts: now, endpoints: [{ host: '203.0.113.66', port: 8448 }] };
    const resigned = buildDescriptor({
      serverName: 'hs1.test',
      key: hs4.running.services.identity,
      endpoints: [{ host: '203.0.113.66', port: 8448 }],
      tlsFingerprints: [],
      capabilities: ['relay'],
      now,
      validForMs: DAY,
    });
    const expired = signAs({ ...body, issued_ts: now - 1000, valid_until_ts: now - 500 }, hs1Key);
    const future = signAs({ ...body, issued_ts: now + 3_600_000, valid_until_ts: now + DAY }, hs1Key);
    expect(await announce([forged, resigned, expired, future])).toEqual({ accepted: 0, refused: 4, over_budget: 0 });

    // Replays: the very descriptor held, and an older one genuinely signed by hs1.
    const older = signAs({ ...body, issued_ts: held.issued_ts - 60_000 }, hs1Key);
    expect(await announce([held, older])).toEqual({ accepted: 0, refused: 0, over_budget: 0 });
    expect(book(hs2).book.get('hs1.test')?.descriptor).toEqual(held);

    // A genuine newer descriptor (hs3 re-signed, as it does halfway through its validity),
    // pushed with one hop left: taken, and passed on with none (hs1 gets it).
    const hs3 = fed.byName('hs3.test');
    const hs3Own = book(hs3).ownDescriptor();
    if (!hs3Own) throw new Error('hs3 announces: it has a descriptor');
    const { signatures: _s3, ...hs3Body } = hs3Own;
    const renewed = signAs({ ...hs3Body, issued_ts: now, valid_until_ts: now + DAY }, hs3.running.services.identity);
    expect(await announce([renewed], 1)).toEqual({ accepted: 1, refused: 0, over_budget: 0 });
    expect(book(hs2).book.get('hs3.test')?.descriptor.issued_ts).toBe(now);
    await until(() => book(hs1).book.get('hs3.test')?.descriptor.issued_ts === now, 10_000);

    // Per-peer budget (announce_per_peer: burst 256, then 30 a minute; at most 64 checked per
    // message). What costs is a descriptor to check (key fetch, signature): hs4's forgeries are
    // checked until its budget is spent, then not even looked at, while hs5 keeps its own.
    // Junk and replays cost nothing and are sorted out whatever the budget.
    const forgeries = Array.from({ length: 64 }, (_, i) => ({ ...forged, issued_ts: now + 1 + i }));
    const answers = [];
    for (let i = 0; i < 5; i++) answers.push(await announce(forgeries));
    const read = answers.reduce((n, a) => n + a.refused, 0);
    expect(answers.every((a) => a.accepted === 0)).toBe(true);
    expect(answers.reduce((n, a) => n + a.over_budget, 0)).toBe(5 * 64 - read);
    expect(read).toBeLessThanOrEqual(256);
    expect(answers[4]?.over_budget).toBeGreaterThanOrEqual(60);
    const junk = Array.from({ length: 64 }, (_, i) => ({ junk: i }));
    expect(await announce(junk)).toEqual({ accepted: 0, refused: 64, over_budget: 0 });
    expect(await announce(forgeries, 0, fed.byName('hs5.test'))).toEqual({ accepted: 0, refused: 64, over_budget: 0 });
    // hs4 and hs5 pushed descriptors: they are still in no list (neither signed one of its own).
    expect(known(hs2)).not.toContain('hs4.test');
    expect(known(hs2)).not.toContain('hs5.test');
  });

  it('a restarted server starts from its cache and anchors, without its seed', async () => {
    const hs1 = fed.byName('hs1.test');
    const hs3 = fed.byName('hs3.test');
    // Both servers hs3 knows have answered it: they are its anchors.
    await until(() => book(hs3).book.anchors().length === 2, 20_000);
    const anchors = book(hs3).book.anchors().sort();
    expect(anchors).toEqual(['hs1.test', 'hs2.test']);
    await hs1.stop(); // hs3's only seed
    await hs3.stop();
    const restarted = Date.now();
    await hs3.start();
    // From the cache: hs2 known again without asking anyone; the anchors are the same two.
    await until(() => known(hs3).includes('hs2.test') && book(hs3).book.anchors().length === 2, 5_000);
    expect(book(hs3).book.anchors().sort()).toEqual(anchors);
    expect(book(hs3).book.get('hs2.test')?.table).toBe('tried');
    // The anchor that is up answers hs3 after the restart.
    await until(() => (book(hs3).book.get('hs2.test')?.lastSuccessTs ?? 0) >= restarted, 20_000);
    await hs1.start();
  }, 60_000);

  it('admins see, pin and prune the list (a pruned entry stays out while gossip repeats it); others are refused', async () => {
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
    expect(book(hs2).book.get('hs3.test')?.pinned).toBe(true);
    // An admin's save and the upkeep round's save at the same moment both succeed.
    await Promise.all(Array.from({ length: 5 }, () => book(hs2).saveCache()));
    // hs1 restarted in the test before and signed a new descriptor then (its first one of this
    // run): wait until hs2 holds that one, so that nothing hs1 signs is newer than the prune.
    const hs1Now = book(fed.byName('hs1.test')).ownDescriptor()?.issued_ts;
    await until(() => book(hs2).book.get('hs1.test')?.descriptor.issued_ts === hs1Now, 20_000);
    await admin.request('DELETE', '/api/v1/admin/bootstrap/hs1.test');
    expect(book(hs2).book.get('hs1.test')).toBeUndefined();
    // hs3's list still names hs1 (same descriptor) and hs2 pulls every second: hs1 stays out.
    await until(
      () =>
        book(fed.byName('hs3.test'))
          .list()
          .some((d) => d.server_name === 'hs1.test'),
      20_000,
    );
    await new Promise((r) => setTimeout(r, 4000));
    expect(book(hs2).book.get('hs1.test')).toBeUndefined();
    await expect(admin.request('DELETE', '/api/v1/admin/bootstrap/hs1.test')).rejects.toMatchObject({ status: 404 });
    await expect(admin.request('PUT', '/api/v1/admin/bootstrap/hs3.test/pin', { pinned: 'yes' })).rejects.toMatchObject({ status: 400 });

    const user = await hs2.user('someone');
    await expect(user.client.request('GET', '/api/v1/admin/bootstrap')).rejects.toMatchObject({ status: 403 });
    // What the web client's Explore page and capability lookups read.
    const servers = (await user.client.request('GET', '/api/v1/directory/servers')) as {
      servers: Array<{ server_name: string; capabilities: string[] }>;
    };
    expect(servers.servers.map((s) => s.server_name)).toEqual(['hs3.test']);
    expect(servers.servers[0]?.capabilities.sort()).toEqual(['mailbox', 'relay']);
    // Relays are found by capability from the list: hs2's relay choice for traffic to hs4
    // (with no configured anchor and no minimum age) is hs3.
    const fedCtx = hs2.running.federation?.context;
    if (!fedCtx) throw new Error('hs2 has no federation');
    const relays = new RelayFallbackService(
      hs2.running.services.db,
      fedCtx,
      hs2.running.services.identity,
      () => hs2.running.services.bootstrap,
      { fallbackAfterMs: 0, directRetryMaxMs: 1000, pollMs: 100, anchors: [], minAgeMs: 0, epochMs: 86_400_000, tries: 2 },
      createLogger('silent'),
    );
    expect(await relays.relaysFor('hs4.test')).toEqual(['hs3.test']);
  }, 60_000);
});
