import type { ServerKeyDocument } from '@parley/schemas';
import { describe, expect, it } from 'vitest';
import { generateSigningKey, KEY_STORE_DEFAULTS, notarize, type SigningKey } from '../../src/keys/index.js';
import { DAY, deferred, FakeClock, FakeNetwork, FakeServer, makeStore } from './helpers.js';

/** b.test's document re-signed by an impostor that reuses b's current key ID with its own key. */
function sameIdOtherKey(b: FakeServer): { impostor: FakeServer; key: SigningKey } {
  const impostor = new FakeServer('b.test', b.clock);
  impostor.current = { ...generateSigningKey(), keyId: b.current.keyId };
  impostor.fingerprints = ['K1mHUV9VotBbECiNHlOgxTqXzkRHAR0KmgmBU-ggd_E'];
  return { impostor, key: impostor.current };
}

describe('security: L5 a changed key under a known key ID does not replace the old one', () => {
  it('refuses the document, keeps the known key and pins, and reports a conflict', async () => {
    const clock = new FakeClock();
    const network = new FakeNetwork();
    const b = new FakeServer('b.test', clock);
    network.answers.set('b.test', () => b.document());
    const { store, events } = makeStore(network, clock);
    const original = await store.getKey('b.test', b.current.keyId);
    expect(original?.equals(b.current.publicKey)).toBe(true);
    const firstDoc = await store.getDocument('b.test');

    // Later, b.test answers with another public key under the same key ID (a man in the middle
    // with its own certificate, or a server that lost its key and reused the ID).
    const { impostor, key } = sameIdOtherKey(b);
    network.answers.set('b.test', () => impostor.document());
    clock.advance(KEY_STORE_DEFAULTS.refetchIntervalMs);
    expect(await store.getDocument('b.test', { minimumValidUntilTs: clock.now() + DAY })).toBe(firstDoc);
    expect(network.count('b.test')).toBe(2);

    const now = await store.getKey('b.test', b.current.keyId);
    expect(now?.equals(b.current.publicKey)).toBe(true);
    expect(now?.equals(key.publicKey)).toBe(false);
    expect(store.tlsPins('b.test')).toEqual(b.fingerprints);
    expect(events).toContainEqual(
      expect.objectContaining({ type: 'conflict', server: 'b.test', source: 'direct', keyId: b.current.keyId }),
    );
    expect(store.lastFailure('b.test')).toMatch(/another public key under ed25519:/);
  });

  it('refuses a conflicting document from a notary too', async () => {
    const clock = new FakeClock();
    const b = new FakeServer('b.test', clock);
    const notaryKey = generateSigningKey();
    const { impostor } = sameIdOtherKey(b);
    let notaryAnswer: ServerKeyDocument = b.document();
    const network = new FakeNetwork();
    const { store, events } = makeStore(network, clock, {
      notaries: [{ name: 'n.test', verifyKeys: { [notaryKey.keyId]: notaryKey.publicKey } }],
      queryNotary: async () => [notarize(notaryAnswer, 'n.test', notaryKey)],
    });
    expect((await store.getKey('b.test', b.current.keyId))?.equals(b.current.publicKey)).toBe(true);
    notaryAnswer = impostor.document();
    clock.advance(DAY + 1);
    expect(await store.getDocument('b.test')).toBeUndefined();
    expect(
      store
        .keyRing({ at: clock.now() - DAY })('b.test', b.current.keyId)
        ?.equals(b.current.publicKey),
    ).toBe(true);
    expect(events.filter((e) => e.type === 'conflict')).toHaveLength(1);
  });
});

describe('security: L5 keys new to us are confirmed through a notary before they are trusted', () => {
  function setup() {
    const clock = new FakeClock();
    const b = new FakeServer('b.test', clock);
    const notaryKey = generateSigningKey();
    // The notary reaches the real b.test; we may be talking to someone else.
    const notaryNetwork = new FakeNetwork();
    notaryNetwork.answers.set('b.test', () => b.document());
    const notaryStore = makeStore(notaryNetwork, clock).store;
    const asked: Array<{ server: string; minimumValidUntilTs?: number }> = [];
    let notaryUp = true;
    const network = new FakeNetwork();
    const { store, events } = makeStore(network, clock, {
      notaries: [{ name: 'n.test', verifyKeys: { [notaryKey.keyId]: notaryKey.publicKey } }],
      queryNotary: async (_notary, server, criteria) => {
        asked.push({ server, ...criteria });
        if (!notaryUp) throw new Error('connect ECONNREFUSED n.test');
        const doc = await notaryStore.getDocument(server, criteria);
        return doc ? [notarize(doc, 'n.test', notaryKey)] : [];
      },
    });
    return {
      clock,
      b,
      network,
      notaryNetwork,
      store,
      events,
      asked,
      setNotaryUp: (up: boolean) => {
        notaryUp = up;
      },
    };
  }

  it('at first contact, a key served by a man in the middle is not trusted: the notary’s wins', async () => {
    const s = setup();
    const mitm = new FakeServer('b.test', s.clock);
    s.network.answers.set('b.test', () => mitm.document());
    expect(await s.store.getKey('b.test', mitm.current.keyId)).toBeUndefined();
    expect((await s.store.getKey('b.test', s.b.current.keyId))?.equals(s.b.current.publicKey)).toBe(true);
    expect(s.store.tlsPins('b.test')).toEqual(s.b.fingerprints);
    expect(s.events).toContainEqual(expect.objectContaining({ type: 'unconfirmed', server: 'b.test', source: 'direct' }));
  });

  it('trusts nothing new while no notary answers (fails closed), then trusts the confirmed key', async () => {
    const s = setup();
    s.network.answers.set('b.test', () => s.b.document());
    s.setNotaryUp(false);
    expect(await s.store.getKey('b.test', s.b.current.keyId)).toBeUndefined();
    expect(s.store.lastFailure('b.test')).toMatch(/not confirmed by any notary \(n\.test\)/);
    s.setNotaryUp(true);
    s.clock.advance(KEY_STORE_DEFAULTS.failureTtlMs);
    expect((await s.store.getKey('b.test', s.b.current.keyId))?.equals(s.b.current.publicKey)).toBe(true);
  });

  it('asks the notary for a document as fresh as the one served, so a rotation is confirmed at once', async () => {
    const s = setup();
    s.network.answers.set('b.test', () => s.b.document());
    expect(await s.store.getKey('b.test', s.b.current.keyId)).toBeDefined();
    s.clock.advance(KEY_STORE_DEFAULTS.refetchIntervalMs);
    s.b.rotate();
    // The notary still holds the document from before the rotation; the criteria make it refetch.
    expect((await s.store.getKey('b.test', s.b.current.keyId))?.equals(s.b.current.publicKey)).toBe(true);
    expect(s.asked.at(-1)?.minimumValidUntilTs).toBe(s.clock.now() + DAY);
    expect(s.notaryNetwork.count('b.test')).toBe(2);
  });

  it('confirms a notary’s own keys against its configured keys, without asking it about itself', async () => {
    const clock = new FakeClock();
    const n = new FakeServer('n.test', clock);
    const network = new FakeNetwork();
    network.answers.set('n.test', () => n.document());
    const asked: string[] = [];
    const { store } = makeStore(network, clock, {
      notaries: [{ name: 'n.test', verifyKeys: { [n.current.keyId]: n.current.publicKey } }],
      queryNotary: async (notary, server) => {
        asked.push(`${notary}:${server}`);
        return [];
      },
    });
    expect(await store.getKey('n.test', n.current.keyId)).toBeDefined();
    expect(asked).toEqual([]);
    // Someone else answering as n.test, with keys the configuration does not give it:
    const impostor = new FakeServer('n.test', clock);
    const other = makeStore(new FakeNetwork(), clock, {
      fetchDirect: async () => impostor.document(),
      notaries: [{ name: 'n.test', verifyKeys: { [n.current.keyId]: n.current.publicKey } }],
      queryNotary: async () => [],
    }).store;
    expect(await other.getKey('n.test', impostor.current.keyId)).toBeUndefined();
    expect(other.lastFailure('n.test')).toMatch(/not confirmed by any notary/);
  });

  it('without notaries, trusts the first key it sees (trust on first use)', async () => {
    const clock = new FakeClock();
    const network = new FakeNetwork();
    const anyone = new FakeServer('b.test', clock);
    network.answers.set('b.test', () => anyone.document());
    const { store } = makeStore(network, clock);
    expect(await store.getKey('b.test', anyone.current.keyId)).toBeDefined();
  });
});

describe('security: L6 lookups on behalf of remote callers are rate-limited, negatively cached and bounded', () => {
  it('asks admission before each fetch a remote caller causes, and not for cached keys', async () => {
    const clock = new FakeClock();
    const network = new FakeNetwork();
    const b = new FakeServer('b.test', clock);
    network.answers.set('b.test', () => b.document());
    const admissions: string[] = [];
    let budget = 3;
    const { store, events } = makeStore(network, clock, {
      admitFetch: (server, requester) => {
        admissions.push(`${requester}>${server}`);
        return budget-- > 0;
      },
    });
    const names = Array.from({ length: 10 }, (_, i) => `random${i}.test`);
    for (const name of names) expect(await store.getKey(name, 'a_1', { requester: 'ip:192.0.2.7' })).toBeUndefined();
    expect(network.requests).toEqual(names.slice(0, 3));
    expect(events.filter((e) => e.type === 'limited')).toHaveLength(7);
    // Our own lookups (no requester) are not charged to anyone.
    budget = 0;
    expect(await store.getKey('b.test', b.current.keyId)).toBeDefined();
    expect(await store.getKey('b.test', b.current.keyId, { requester: 'ip:192.0.2.7' })).toBeDefined();
    expect(admissions).toHaveLength(10);
  });

  it('does not refetch a name that failed for requesterFailureTtlMs, whoever asks', async () => {
    const clock = new FakeClock();
    const network = new FakeNetwork();
    const { store } = makeStore(network, clock, { requesterFailureTtlMs: 600_000 });
    for (let i = 0; i < 20; i++) {
      await store.getKey('gone.test', 'a_1', { requester: `ip:192.0.2.${i}` });
      clock.advance(29_000);
    }
    // 20 × 29 s = 580 s: one fetch, although the local failure TTL (30 s) passed many times.
    expect(network.count('gone.test')).toBe(1);
    clock.advance(20_001);
    await store.getKey('gone.test', 'a_1', { requester: 'ip:192.0.2.99' });
    expect(network.count('gone.test')).toBe(2);
  });

  it('a failure of our own lookup (a peer down while we deliver) does not hold off the peer once it is back', async () => {
    const clock = new FakeClock();
    const network = new FakeNetwork();
    const b = new FakeServer('b.test', clock);
    const { store } = makeStore(network, clock);
    expect(await store.prefetch('b.test')).toBe(false);
    network.answers.set('b.test', () => b.document());
    clock.advance(KEY_STORE_DEFAULTS.failureTtlMs);
    expect(await store.getKey('b.test', b.current.keyId, { requester: 'ip:192.0.2.2' })).toBeDefined();
  });

  it('runs at most maxConcurrentFetches at once, the rest in line, and refuses beyond the line', async () => {
    const clock = new FakeClock();
    const network = new FakeNetwork();
    const gate = deferred<void>();
    let running = 0;
    let most = 0;
    const { store, events } = makeStore(network, clock, {
      maxConcurrentFetches: 2,
      maxQueuedFetches: 3,
      fetchDirect: async (server) => {
        running++;
        most = Math.max(most, running);
        network.requests.push(server);
        await gate.promise;
        running--;
        throw new Error('nothing here');
      },
    });
    const lookups = Array.from({ length: 8 }, (_, i) => store.getKey(`n${i}.test`, 'a_1', { requester: 'ip:192.0.2.1' }));
    await expect.poll(() => store.fetchStats()).toEqual({ running: 2, queued: 3 });
    expect(network.requests).toHaveLength(2);
    gate.resolve();
    expect(await Promise.all(lookups)).toEqual(Array(8).fill(undefined));
    expect(most).toBe(2);
    expect(network.requests).toHaveLength(5);
    expect(events.filter((e) => e.type === 'limited' && e.reason === 'too many key fetches waiting')).toHaveLength(3);
    expect(store.fetchStats()).toEqual({ running: 0, queued: 0 });
  });

  it('keeps no cache entry for a name it refused to fetch, so random names evict nothing', async () => {
    const clock = new FakeClock();
    const network = new FakeNetwork();
    const b = new FakeServer('b.test', clock);
    network.answers.set('b.test', () => b.document());
    const { store } = makeStore(network, clock, { maxServers: 2, admitFetch: () => false });
    expect(await store.getKey('b.test', b.current.keyId)).toBeDefined();
    for (let i = 0; i < 10; i++) await store.getKey(`r${i}.test`, 'a_1', { requester: 'ip:192.0.2.1' });
    expect(store.keyRing()('b.test', b.current.keyId)).toBeDefined();
  });
});
