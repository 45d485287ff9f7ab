import { describe, expect, it } from 'vitest';
import { generateSigningKey, KEY_STORE_DEFAULTS, notarize } from '../../src/keys/index.js';
import { HOSTILE_VALUES } from '../support/hostile-values.js';
import { DAY, FakeClock, FakeNetwork, FakeServer, makeStore } from './helpers.js';

/**
 * a.test cannot reach b.test directly and asks the notary n.test, which fetched b.test's
 * document itself and answers as `POST /federation/v1/keys/query` would: getDocument, then
 * notarize.
 */
function setup() {
  const clock = new FakeClock();
  const b = new FakeServer('b.test', clock);
  const notaryKey = generateSigningKey();

  const notaryNetwork = new FakeNetwork();
  notaryNetwork.answers.set('b.test', () => b.document());
  const notaryStore = makeStore(notaryNetwork, clock).store;
  const asked: string[] = [];
  const queryNotary = async (notary: string, server: string): Promise<unknown[]> => {
    asked.push(`${notary}:${server}`);
    if (notary !== 'n.test') return [];
    const doc = await notaryStore.getDocument(server);
    return doc ? [notarize(doc, 'n.test', notaryKey)] : [];
  };

  const network = new FakeNetwork();
  const { store, events } = makeStore(network, clock, {
    notaries: [{ name: 'n.test', verifyKeys: { [notaryKey.keyId]: notaryKey.publicKey } }],
    queryNotary,
  });
  return { clock, b, notaryKey, notaryStore, notaryNetwork, network, store, events, asked, queryNotary };
}

describe('KeyStore with a trusted notary', () => {
  it('asks the notary when the server cannot be reached, and accepts what it vouches for', async () => {
    const { b, store, events, asked, network } = setup();
    expect((await store.getKey('b.test', b.current.keyId))?.equals(b.current.publicKey)).toBe(true);
    expect(network.count('b.test')).toBe(1);
    expect(asked).toEqual(['n.test:b.test']);
    expect(store.tlsPins('b.test')).toEqual(b.fingerprints);
    expect(events.map((e) => `${e.type} ${e.source}`)).toEqual(['failed direct', 'accepted notary:n.test']);
  });

  it('asks the notary to confirm keys new to it when the server answers, and not again for keys it holds', async () => {
    const { clock, b, store, asked, network, events } = setup();
    network.answers.set('b.test', () => b.document());
    expect(await store.getKey('b.test', b.current.keyId)).toBeDefined();
    expect(asked).toEqual(['n.test:b.test']);
    expect(events.map((e) => `${e.type} ${e.source}`)).toEqual(['accepted direct', 'accepted notary:n.test']);
    clock.advance(DAY + 1);
    expect(await store.getDocument('b.test')).toBeDefined();
    expect(network.count('b.test')).toBe(2);
    expect(asked).toEqual(['n.test:b.test']);
  });

  it('asks the notary when the server answers with a document naming another server', async () => {
    const { clock, b, store, network } = setup();
    network.answers.set('b.test', () => new FakeServer('evil.test', clock).document());
    expect(await store.getKey('b.test', b.current.keyId)).toBeDefined();
  });

  it('refuses a notary signature under a key other than the configured one', async () => {
    const s = setup();
    const impostor = generateSigningKey();
    const store = makeStore(s.network, s.clock, {
      notaries: [{ name: 'n.test', verifyKeys: { [s.notaryKey.keyId]: s.notaryKey.publicKey } }],
      queryNotary: async (_notary, server) => [notarize((await s.notaryStore.getDocument(server))!, 'n.test', impostor)],
    }).store;
    expect(await store.getKey('b.test', s.b.current.keyId)).toBeUndefined();
    expect(store.lastFailure('b.test')).toMatch(/notary:n\.test: notary n\.test: no known key of n\.test/);
  });

  it.each([
    [
      'a document for another server',
      (s: ReturnType<typeof setup>) => [notarize(new FakeServer('c.test', s.clock).document(), 'n.test', s.notaryKey)],
      /names c\.test/,
    ],
    ['a document the notary did not sign', (s: ReturnType<typeof setup>) => [s.b.document()], /no signature by n\.test/],
    [
      'a notary signature over a tampered document',
      (s: ReturnType<typeof setup>) => {
        const doc = notarize(s.b.document(), 'n.test', s.notaryKey);
        return [{ ...doc, tls_fingerprints: [{ sha256: 'K1mHUV9VotBbECiNHlOgxTqXzkRHAR0KmgmBU-ggd_E' }] }];
      },
      /bad signature by n\.test/,
    ],
    [
      'a document the server signed with a key it does not list',
      (s: ReturnType<typeof setup>) => {
        const doc = s.b.document();
        const forged = notarize({ ...doc, signatures: {} } as never, 'b.test', generateSigningKey());
        return [notarize(forged, 'n.test', s.notaryKey)];
      },
      /key document of b\.test: no known key of b\.test/,
    ],
    [
      'an expired document',
      (s: ReturnType<typeof setup>) => {
        const doc = s.b.document(1000);
        s.clock.advance(1000 + 60_001);
        return [notarize(doc, 'n.test', s.notaryKey)];
      },
      /expired/,
    ],
  ])('refuses %s from the notary', async (_name, answer, reason) => {
    const s = setup();
    const store = makeStore(s.network, s.clock, {
      notaries: [{ name: 'n.test', verifyKeys: { [s.notaryKey.keyId]: s.notaryKey.publicKey } }],
      queryNotary: async () => answer(s),
    }).store;
    expect(await store.getKey('b.test', s.b.current.keyId)).toBeUndefined();
    expect(store.lastFailure('b.test')).toMatch(reason);
  });

  it('tries notaries in order until one vouches', async () => {
    const s = setup();
    const other = generateSigningKey();
    const asked: string[] = [];
    const store = makeStore(s.network, s.clock, {
      notaries: [
        { name: 'm.test', verifyKeys: { [other.keyId]: other.publicKey } },
        { name: 'n.test', verifyKeys: { [s.notaryKey.keyId]: s.notaryKey.publicKey } },
      ],
      queryNotary: async (notary, server) => {
        asked.push(notary);
        if (notary === 'm.test') throw new Error('m.test: 502');
        return s.queryNotary(notary, server);
      },
    }).store;
    expect(await store.getKey('b.test', s.b.current.keyId)).toBeDefined();
    expect(asked).toEqual(['m.test', 'n.test']);
    expect(store.lastFailure('b.test')).toBeUndefined();
  });

  it.each(HOSTILE_VALUES)('answers "unknown", never throws, when a notary yields %s', async (_name, bad) => {
    const s = setup();
    for (const answer of [async () => bad, async () => [bad, bad], async () => Promise.reject(bad)]) {
      const store = makeStore(s.network, s.clock, {
        notaries: [{ name: 'n.test', verifyKeys: { [s.notaryKey.keyId]: s.notaryKey.publicKey } }],
        queryNotary: answer as never,
      }).store;
      await expect(store.getKey('b.test', s.b.current.keyId)).resolves.toBeUndefined();
      expect(store.lastFailure('b.test')).toMatch(/notary:n\.test: /);
    }
  });

  it('only looks at the first 64 documents of an answer', async () => {
    const s = setup();
    const junk = Array.from({ length: 64 }, () => ({ nope: true }));
    const doc = notarize(s.b.document(), 'n.test', s.notaryKey);
    const store = makeStore(s.network, s.clock, {
      notaries: [{ name: 'n.test', verifyKeys: { [s.notaryKey.keyId]: s.notaryKey.publicKey } }],
      queryNotary: async () => [...junk, doc],
    }).store;
    expect(await store.getKey('b.test', s.b.current.keyId)).toBeUndefined();
  });
});

describe('KeyStore.getDocument (what the notary endpoint signs)', () => {
  it('returns the cached document and refetches one valid for less than asked', async () => {
    const { clock, b, notaryStore, notaryNetwork } = setup();
    const doc = await notaryStore.getDocument('b.test');
    expect(doc).toEqual(b.document());
    expect(await notaryStore.getDocument('b.test', { minimumValidUntilTs: doc!.valid_until_ts })).toBe(doc);
    expect(notaryNetwork.count('b.test')).toBe(1);

    clock.advance(KEY_STORE_DEFAULTS.refetchIntervalMs);
    const fresher = await notaryStore.getDocument('b.test', { minimumValidUntilTs: doc!.valid_until_ts + 1 });
    expect(notaryNetwork.count('b.test')).toBe(2);
    expect(fresher!.valid_until_ts).toBe(clock.now() + DAY);
  });

  it('returns nothing once the document is stale and the server unreachable', async () => {
    const { clock, notaryStore, notaryNetwork } = setup();
    expect(await notaryStore.getDocument('b.test')).toBeDefined();
    notaryNetwork.answers.delete('b.test');
    clock.advance(DAY + 1);
    expect(await notaryStore.getDocument('b.test')).toBeUndefined();
  });
});
