import { describe, expect, it } from 'vitest';
import { signEvent, verifyEvent } from '../../src/events/index.js';
import { KEY_STORE_DEFAULTS, KeyStore, type StoredKeyDocument } from '../../src/keys/index.js';
import { HOSTILE_VALUES } from '../support/hostile-values.js';
import { DAY, deferred, FakeClock, FakeNetwork, FakeServer, makeStore } from './helpers.js';

function setup() {
  const clock = new FakeClock();
  const network = new FakeNetwork();
  const b = new FakeServer('b.test', clock);
  network.answers.set('b.test', () => b.document());
  return { clock, network, b, ...makeStore(network, clock) };
}

describe('KeyStore: caching', () => {
  it('fetches once and answers from the cache until valid_until_ts', async () => {
    const { clock, network, b, store } = setup();
    const key = await store.getKey('b.test', b.current.keyId);
    expect(key?.equals(b.current.publicKey)).toBe(true);
    clock.advance(DAY - 1);
    expect(await store.getKey('b.test', b.current.keyId)).toBe(key);
    clock.advance(1);
    expect(await store.getKey('b.test', b.current.keyId)).toBe(key);
    expect(network.count('b.test')).toBe(1);
    // Past valid_until_ts the document is stale: the next lookup for now fetches a new one.
    clock.advance(1);
    expect((await store.getKey('b.test', b.current.keyId))?.equals(b.current.publicKey)).toBe(true);
    expect(network.count('b.test')).toBe(2);
  });

  it('keeps answering for past signatures once the document is stale and its server gone', async () => {
    const { clock, network, b, store } = setup();
    await store.getKey('b.test', b.current.keyId);
    clock.advance(3 * DAY);
    network.answers.delete('b.test');
    expect(await store.getKey('b.test', b.current.keyId, { at: clock.now() - 2 * DAY - 1 })).toBeDefined();
    expect(network.count('b.test')).toBe(1);
    expect(await store.getKey('b.test', b.current.keyId)).toBeUndefined();
    expect(network.count('b.test')).toBe(2);
    expect(store.lastFailure('b.test')).toMatch(/^direct: connect ECONNREFUSED b\.test/);
  });

  it('shares one fetch among concurrent lookups for one server', async () => {
    const { network, b, store } = setup();
    const gate = deferred<unknown>();
    network.answers.set('b.test', () => gate.promise);
    const lookups = [
      ...Array.from({ length: 10 }, () => store.getKey('b.test', b.current.keyId)),
      store.getKey('b.test', 'a_unknown1'),
      store.prefetch('b.test', [b.current.keyId]),
      store.getDocument('b.test'),
    ];
    await new Promise((resolve) => setTimeout(resolve, 5));
    expect(network.count('b.test')).toBe(1);
    gate.resolve(b.document());
    const results = await Promise.all(lookups);
    expect(network.count('b.test')).toBe(1);
    for (const key of results.slice(0, 10)) expect((key as any).equals(b.current.publicKey)).toBe(true);
    expect(results[10]).toBeUndefined();
    expect(results[11]).toBe(true);
    expect(results[12]).toMatchObject({ server_name: 'b.test' });
  });

  it('does not share a fetch between servers', async () => {
    const { clock, network, b, store } = setup();
    const c = new FakeServer('c.test', clock);
    network.answers.set('c.test', () => c.document());
    const [kb, kc] = await Promise.all([store.getKey('b.test', b.current.keyId), store.getKey('c.test', c.current.keyId)]);
    expect(kb?.equals(b.current.publicKey) && kc?.equals(c.current.publicKey)).toBe(true);
    expect(network.requests.sort()).toEqual(['b.test', 'c.test']);
  });

  it('drops the least recently used server beyond maxServers', async () => {
    const clock = new FakeClock();
    const network = new FakeNetwork();
    const servers = ['s1.test', 's2.test', 's3.test'].map((name) => new FakeServer(name, clock));
    for (const s of servers) network.answers.set(s.name, () => s.document());
    const { store } = makeStore(network, clock, { maxServers: 2 });
    for (const s of servers) await store.getKey(s.name, s.current.keyId);
    await store.getKey('s2.test', servers[1]!.current.keyId);
    await store.getKey('s3.test', servers[2]!.current.keyId);
    expect(network.requests).toEqual(['s1.test', 's2.test', 's3.test']);
    await store.getKey('s1.test', servers[0]!.current.keyId);
    expect(network.count('s1.test')).toBe(2);
  });
});

describe('KeyStore: key rotation and unknown key IDs', () => {
  it('refetches for an unknown key ID at most once per refetch interval', async () => {
    const { clock, network, b, store } = setup();
    const first = b.current;
    await store.getKey('b.test', first.keyId);
    clock.advance(1000);
    const retired = b.rotate();
    const unknown = Array.from({ length: 50 }, (_, i) => store.getKey('b.test', `a_probe${i}`));
    expect(await Promise.all(unknown)).toEqual(Array(50).fill(undefined));
    expect(await store.getKey('b.test', b.current.keyId)).toBeUndefined();
    expect(network.count('b.test')).toBe(1);

    clock.advance(KEY_STORE_DEFAULTS.refetchIntervalMs);
    expect((await store.getKey('b.test', b.current.keyId))?.equals(b.current.publicKey)).toBe(true);
    expect(network.count('b.test')).toBe(2);
    // The retired key now verifies only what it signed before it was retired.
    const retiredAt = b.retired[0]!.expiredTs;
    expect(await store.getKey('b.test', retired.keyId, { at: retiredAt - 1 })).toBeDefined();
    expect(await store.getKey('b.test', retired.keyId, { at: retiredAt })).toBeUndefined();
    expect(await store.getKey('b.test', retired.keyId)).toBeUndefined();
  });

  it('caches a failed fetch for failureTtlMs, then tries again', async () => {
    const { clock, network, b, store, events } = setup();
    network.answers.set('b.test', () => Promise.reject(new Error('socket hang up')));
    expect(await store.getKey('b.test', b.current.keyId)).toBeUndefined();
    expect(await store.getKey('b.test', b.current.keyId)).toBeUndefined();
    expect(await store.prefetch('b.test')).toBe(false);
    expect(network.count('b.test')).toBe(1);
    expect(store.lastFailure('b.test')).toBe('direct: socket hang up');
    expect(events).toContainEqual({ type: 'failed', server: 'b.test', source: 'direct', reason: 'socket hang up' });

    network.answers.set('b.test', () => b.document());
    clock.advance(KEY_STORE_DEFAULTS.failureTtlMs - 1);
    expect(await store.getKey('b.test', b.current.keyId)).toBeUndefined();
    clock.advance(1);
    expect(await store.getKey('b.test', b.current.keyId)).toBeDefined();
    expect(network.count('b.test')).toBe(2);
    expect(store.lastFailure('b.test')).toBeUndefined();
  });

  it('lets a request signed by a server it failed to reach fetch again at once, and only once', async () => {
    const { network, b, store } = setup();
    // Our own lookup (delivering to b while it is away) fails: our next own lookup waits out failureTtlMs.
    network.answers.set('b.test', () => Promise.reject(new Error('connect ECONNREFUSED')));
    expect(await store.getKey('b.test', b.current.keyId)).toBeUndefined();
    expect(await store.getKey('b.test', b.current.keyId)).toBeUndefined();
    expect(network.count('b.test')).toBe(1);
    // b is back and calls us: the lookup its request causes fetches now, not after the TTL.
    network.answers.set('b.test', () => b.document());
    expect(await store.getKey('b.test', b.current.keyId, { requester: 'ip:192.0.2.7' })).toBeDefined();
    expect(network.count('b.test')).toBe(2);

    // A remote caller's failed lookup is not repeated for the next caller (the negative cache holds).
    const c = new FakeServer('c.test', new FakeClock());
    network.answers.set('c.test', () => Promise.reject(new Error('connect ECONNREFUSED')));
    expect(await store.getKey('c.test', c.current.keyId)).toBeUndefined();
    expect(await store.getKey('c.test', c.current.keyId, { requester: 'ip:192.0.2.7' })).toBeUndefined();
    expect(await store.getKey('c.test', c.current.keyId, { requester: 'ip:192.0.2.8' })).toBeUndefined();
    expect(network.count('c.test')).toBe(2);
  });

  it('keeps a retirement it has seen when a stale copy says the key is current', async () => {
    const clock = new FakeClock();
    const network = new FakeNetwork();
    const b = new FakeServer('b.test', clock);
    const staleCopy = b.document();
    clock.advance(1000);
    const retired = b.rotate();
    network.answers.set('b.test', () => b.document());
    const { store } = makeStore(network, clock, { refetchIntervalMs: 0 });
    expect(await store.getKey('b.test', retired.keyId)).toBeUndefined();
    // Someone later serves the pre-rotation document, still within its validity.
    network.answers.set('b.test', () => staleCopy);
    await store.getKey('b.test', 'a_other');
    expect(network.count('b.test')).toBe(2);
    expect(await store.getKey('b.test', retired.keyId)).toBeUndefined();
    expect(await store.getKey('b.test', retired.keyId, { at: clock.now() - 1001 })).toBeDefined();
  });
});

describe('KeyStore: documents it refuses', () => {
  it('refuses a document naming another server, and says so', async () => {
    const { clock, network, store, events } = setup();
    const c = new FakeServer('c.test', clock);
    network.answers.set('b.test', () => c.document());
    expect(await store.getKey('b.test', c.current.keyId)).toBeUndefined();
    expect(await store.getKey('c.test', c.current.keyId)).toBeUndefined();
    expect(store.lastFailure('b.test')).toBe('direct: key document names c.test, not b.test that was asked');
    expect(events).toContainEqual({
      type: 'refused',
      server: 'b.test',
      source: 'direct',
      reason: 'key document names c.test, not b.test that was asked',
    });
    expect(store.tlsPins('b.test')).toBeUndefined();
  });

  it('refuses a document whose key was swapped', async () => {
    const { clock, network, b, store } = setup();
    const intruder = new FakeServer('b.test', clock);
    network.answers.set('b.test', () => {
      const doc = b.document();
      return { ...doc, verify_keys: intruder.document().verify_keys };
    });
    expect(await store.getKey('b.test', intruder.current.keyId)).toBeUndefined();
    expect(store.lastFailure('b.test')).toMatch(/^direct: key document of b\.test: /);
  });

  it.each(HOSTILE_VALUES)('answers "unknown", never throws, when the fetcher yields %s', async (_name, bad) => {
    const { network, b, store } = setup();
    network.answers.set('b.test', () => bad);
    await expect(store.getKey('b.test', b.current.keyId)).resolves.toBeUndefined();
    expect(store.lastFailure('b.test')).toMatch(/^direct: /);
  });

  it.each(HOSTILE_VALUES)('answers "unknown", never throws, when the fetcher rejects with %s', async (_name, bad) => {
    const { network, b, store } = setup();
    network.answers.set('b.test', () => Promise.reject(bad));
    await expect(store.getKey('b.test', b.current.keyId)).resolves.toBeUndefined();
    await expect(store.prefetch('b.test', [b.current.keyId])).resolves.toBe(false);
    await expect(store.getDocument('b.test')).resolves.toBeUndefined();
  });

  it('answers "unknown" when the fetcher throws synchronously or the logger throws', async () => {
    const clock = new FakeClock();
    const b = new FakeServer('b.test', clock);
    const store = new KeyStore({
      fetchDirect: () => {
        throw new Error('boom');
      },
      now: clock.now,
      onEvent: () => {
        throw new Error('logger down');
      },
    });
    await expect(store.getKey('b.test', b.current.keyId)).resolves.toBeUndefined();
    expect(store.lastFailure('b.test')).toBe('direct: boom');
  });

  it.each(HOSTILE_VALUES)('answers "unknown" without fetching for %s as server, key ID or time', async (_name, bad) => {
    const { network, b, store } = setup();
    await expect(store.getKey(bad as string, b.current.keyId)).resolves.toBeUndefined();
    await expect(store.getKey('b.test', bad as string)).resolves.toBeUndefined();
    await expect(store.prefetch(bad as string)).resolves.toBe(false);
    // No key IDs at all (undefined or []) asks for a fresh document, which the network has.
    const noKeyIds = bad === undefined || (Array.isArray(bad) && bad.length === 0);
    await expect(store.prefetch('b.test', bad as string[])).resolves.toBe(noKeyIds);
    await expect(store.getDocument(bad as string)).resolves.toBeUndefined();
    expect(store.keyRing()(bad as string, bad as string)).toBeUndefined();
    expect(store.tlsPins(bad as string)).toBeUndefined();
    expect(store.lastFailure(bad as string)).toBeUndefined();
    // undefined and null mean "now", and 0 is a time: those are real lookups.
    if (bad !== 0 && bad !== undefined && bad !== null)
      await expect(store.getKey('b.test', b.current.keyId, { at: bad as number })).resolves.toBeUndefined();
    // Only the empty key list (a request for a fresh document) may have reached the network.
    expect(network.requests.length).toBeLessThanOrEqual(1);
  });

  const fetchDirect = async () => ({});
  const queryNotary = async () => [];
  it.each([
    ['no options', undefined, /^options: /],
    ['no fetcher', {}, /^options\.fetchDirect: /],
    ['notaries without a query function', { fetchDirect, notaries: [{ name: 'n.test', verifyKeys: {} }] }, /^options\.queryNotary: /],
    [
      'a notary without keys',
      { fetchDirect, queryNotary, notaries: [{ name: 'n.test', verifyKeys: {} }] },
      /verifyKeys: expected at least one key/,
    ],
    ['a notary with a bad name', { fetchDirect, queryNotary, notaries: [{ name: 'n test', verifyKeys: {} }] }, /notaries\[0\]\.name: /],
    [
      'a notary key that is not a key',
      { fetchDirect, queryNotary, notaries: [{ name: 'n.test', verifyKeys: { a_1: 'x' } }] },
      /verifyKeys\.a_1: /,
    ],
    ['a persistence without save', { fetchDirect, persistence: { load: async () => [] } }, /^options\.persistence: /],
    ['a negative TTL', { fetchDirect, failureTtlMs: -1 }, /^options\.failureTtlMs: /],
    ['zero servers', { fetchDirect, maxServers: 0 }, /^options\.maxServers: /],
    ['a clock that is not a function', { fetchDirect, now: 5 }, /^options\.now: /],
  ])('the constructor throws a TypeError for %s', (_name, options, message) => {
    expect(() => new KeyStore(options as never)).toThrow(message);
  });
});

describe('KeyStore: the synchronous KeyRing and TLS pins', () => {
  it('answers from the cache only, after prefetch', async () => {
    const { network, b, store } = setup();
    const ring = store.keyRing();
    expect(ring('b.test', b.current.keyId)).toBeUndefined();
    expect(network.count('b.test')).toBe(0);
    expect(await store.prefetch('b.test', [b.current.keyId])).toBe(true);
    expect(ring('b.test', b.current.keyId)?.equals(b.current.publicKey)).toBe(true);
    expect(ring('b.test', 'a_unknown')).toBeUndefined();
    expect(ring('c.test', b.current.keyId)).toBeUndefined();
  });

  it('lets the event verifier use an old key only for events from before its retirement', async () => {
    const { clock, network, b, store } = setup();
    const sender = '@alice:b.test';
    const event = (origin_ts: number) => ({
      room_id: '!room:b.test',
      type: 'room.message',
      sender,
      origin: 'b.test',
      origin_ts,
      lamport: 1,
      content: { body: 'hi' },
    });
    const before = signEvent(event(clock.now() - 10), 'b.test', b.current).event;
    clock.advance(1000);
    const retired = b.rotate();
    const after = signEvent(event(clock.now() + 10), 'b.test', retired).event;
    expect(await store.prefetch('b.test', [retired.keyId], { at: before.origin_ts })).toBe(true);
    expect(network.count('b.test')).toBe(1);

    expect(verifyEvent(before, store.keyRing({ at: before.origin_ts })).ok).toBe(true);
    expect(verifyEvent(before, store.keyRing())).toMatchObject({ ok: false, kind: 'signature' });
    // Signed with the old key after its retirement: refused at the event's own time.
    expect(verifyEvent(after, store.keyRing({ at: after.origin_ts }))).toMatchObject({ ok: false, kind: 'signature' });
  });

  it('reports the TLS fingerprints of the newest verified document', async () => {
    const { clock, b, store } = setup();
    expect(store.tlsPins('b.test')).toBeUndefined();
    await store.prefetch('b.test');
    expect(store.tlsPins('b.test')).toEqual(b.fingerprints);
    b.fingerprints = ['K1mHUV9VotBbECiNHlOgxTqXzkRHAR0KmgmBU-ggd_E'];
    clock.advance(DAY + 1);
    await store.prefetch('b.test');
    expect(store.tlsPins('b.test')).toEqual(['K1mHUV9VotBbECiNHlOgxTqXzkRHAR0KmgmBU-ggd_E']);
  });
});

describe('KeyStore: persistence', () => {
  class MemoryPersistence {
    rows: Array<{ server: string } & StoredKeyDocument> = [];
    load = async (server: string) => this.rows.filter((r) => r.server === server);
    save = async (server: string, entry: StoredKeyDocument) => {
      this.rows.push({ server, ...structuredClone(entry) });
    };
  }

  it('saves what it accepts and starts from it after a restart', async () => {
    const { clock, network, b } = setup();
    const persistence = new MemoryPersistence();
    const first = makeStore(network, clock, { persistence }).store;
    await first.getKey('b.test', b.current.keyId);
    expect(persistence.rows).toHaveLength(1);
    expect(persistence.rows[0]).toMatchObject({ server: 'b.test', fetchedAt: clock.now() });

    clock.advance(DAY / 2);
    const second = makeStore(network, clock, { persistence }).store;
    expect((await second.getKey('b.test', b.current.keyId))?.equals(b.current.publicKey)).toBe(true);
    expect(second.tlsPins('b.test')).toEqual(b.fingerprints);
    expect(network.count('b.test')).toBe(1);
  });

  it('uses an expired stored document for past signatures only', async () => {
    const { clock, network, b } = setup();
    const persistence = new MemoryPersistence();
    await makeStore(network, clock, { persistence }).store.getKey('b.test', b.current.keyId);
    const signedAt = clock.now();
    clock.advance(10 * DAY);
    network.answers.delete('b.test');
    const { store, events } = makeStore(network, clock, { persistence });
    expect(await store.getKey('b.test', b.current.keyId, { at: signedAt })).toBeDefined();
    expect(network.count('b.test')).toBe(1);
    expect(await store.getKey('b.test', b.current.keyId)).toBeUndefined();
    expect(network.count('b.test')).toBe(2);
    expect(events.filter((e) => e.type === 'refused')).toEqual([]);
  });

  it('ignores a stored row dated in the future', async () => {
    const { clock, network, b } = setup();
    const persistence = new MemoryPersistence();
    persistence.rows.push({ server: 'b.test', document: b.document(), fetchedAt: clock.now() + DAY });
    const { store } = makeStore(network, clock, { persistence });
    expect(await store.getKey('b.test', b.current.keyId)).toBeDefined();
    expect(network.count('b.test')).toBe(1);
  });

  it('fetches when stored rows are garbage or loading fails', async () => {
    const { clock, network, b } = setup();
    const garbage = { load: async () => [{ document: { server_name: 'b.test' }, fetchedAt: 1 }, null, 'x'] as never, save: async () => {} };
    const a = makeStore(network, clock, { persistence: garbage });
    expect(await a.store.getKey('b.test', b.current.keyId)).toBeDefined();
    expect(a.events).toContainEqual(expect.objectContaining({ type: 'refused', source: 'persisted' }));
    const failing = {
      load: async () => {
        throw new Error('db down');
      },
      save: async () => {
        throw new Error('db down');
      },
    };
    const c = makeStore(network, clock, { persistence: failing });
    expect(await c.store.getKey('b.test', b.current.keyId)).toBeDefined();
    expect(c.events.filter((e) => e.type === 'failed')).toEqual([
      { type: 'failed', server: 'b.test', source: 'persistence', reason: 'db down' },
      { type: 'failed', server: 'b.test', source: 'persistence', reason: 'db down' },
    ]);
  });
});
