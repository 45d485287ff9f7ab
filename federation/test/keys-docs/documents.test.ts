import { check, KeyQueryRequest, KeyQueryResponse, ServerKeyDocument } from '@parley/schemas';
import { getPublicKey, verifyEd25519 } from '@parley/sdk';
import canonicalize from 'canonicalize';
import { describe, expect, it } from 'vitest';
import {
  buildKeyDocument,
  generateSigningKey,
  KEY_DOCUMENT_CLOCK_SKEW_MS,
  keyRingOf,
  keyUsableAt,
  MAX_KEY_VALIDITY_MS,
  notarize,
  publicKeyB64u,
  signingKeyFromSeed,
  verifyKeyDocument,
  verifyNotarized,
} from '../../src/keys/index.js';
import { HOSTILE_VALUES } from '../support/hostile-values.js';
import vectors from './vectors/key-documents.json' with { type: 'json' };

const seedOf = (hex: string) => Buffer.from(hex, 'hex');
const current = signingKeyFromSeed(seedOf(vectors.keys.current.seed), vectors.keys.current.key_id);
const old = signingKeyFromSeed(seedOf(vectors.keys.old.seed), vectors.keys.old.key_id);
const notaryKey = signingKeyFromSeed(seedOf(vectors.keys.notary.seed), vectors.keys.notary.key_id);
const stranger = signingKeyFromSeed(seedOf(vectors.keys.stranger.seed), vectors.keys.stranger.key_id);
const server = vectors.server;
const notaryName = vectors.keys.notary.server;
const now = vectors.now;
const params = {
  serverName: server,
  current,
  old: [{ keyId: old.keyId, publicKey: old.publicKey, expiredTs: vectors.keys.old.expired_ts }],
  tlsFingerprints: vectors.tls_fingerprints,
  validForMs: vectors.valid_for_ms,
  now,
};
// The JSON import types signatures by their literal keys; lookups here go by variable names.
const signaturesOf = (doc: { signatures: object }) => doc.signatures as Record<string, Record<string, string>>;
const notaryRing = keyRingOf({ [notaryName]: { [notaryKey.keyId]: notaryKey.publicKey } });

describe('buildKeyDocument / verifyKeyDocument (key-documents.json)', () => {
  it('reproduces the reference document byte for byte', () => {
    expect(buildKeyDocument(params)).toEqual(vectors.document);
    expect(check(ServerKeyDocument, vectors.document).ok).toBe(true);
  });

  it('verifies the reference document for the server that was asked', () => {
    const result = verifyKeyDocument(vectors.document, { expectedServer: server, now });
    if (!result.ok) throw new Error(result.reason);
    expect(result.serverName).toBe(server);
    expect(result.validUntil).toBe(now + vectors.valid_for_ms);
    expect(result.tlsFingerprints).toEqual(vectors.tls_fingerprints);
    expect([...result.keys.keys()]).toEqual([current.keyId, old.keyId]);
    const cur = result.keys.get(current.keyId)!;
    expect(cur.publicKey.equals(current.publicKey)).toBe(true);
    expect(cur).toMatchObject({ validUntil: now + vectors.valid_for_ms });
    expect(cur.expired).toBeUndefined();
    const retired = result.keys.get(old.keyId)!;
    expect(retired.publicKey.equals(old.publicKey)).toBe(true);
    expect(retired).toMatchObject({ validUntil: vectors.keys.old.expired_ts, expired: true });
  });

  // Independent of src/: RFC 8785 by the canonicalize package and Ed25519 by noble, as a browser would.
  it('carries a self-signature that noble verifies over the canonical document', () => {
    const { signatures, ...signed } = vectors.document;
    const sig = Buffer.from(signaturesOf({ signatures })[server]![`ed25519:${current.keyId}`]!, 'base64url');
    const message = new TextEncoder().encode(canonicalize(signed)!);
    const publicKey = getPublicKey(new Uint8Array(seedOf(vectors.keys.current.seed)));
    expect(Buffer.from(publicKey).toString('base64url')).toBe(vectors.keys.current.public_key);
    expect(verifyEd25519(new Uint8Array(sig), message, publicKey)).toBe(true);
  });

  it.each(vectors.refused.map((c) => [c.name, c]))('refuses %s', (_name, c) => {
    const result = verifyKeyDocument(c.document, { expectedServer: server, now: c.now ?? now });
    expect(result).toMatchObject({ ok: false, kind: c.kind });
  });

  it('says which server a misnamed document names', () => {
    const misnamed = vectors.refused.find((c) => c.kind === 'wrong_server')!;
    expect(verifyKeyDocument(misnamed.document, { expectedServer: server, now })).toEqual({
      ok: false,
      kind: 'wrong_server',
      reason: 'key document names c.test, not b.test that was asked',
    });
    // The same document is fine for the server it names: only who was asked decides.
    expect(verifyKeyDocument(misnamed.document, { expectedServer: 'c.test', now }).ok).toBe(true);
  });

  it('accepts a document up to the clock skew past valid_until_ts', () => {
    const end = vectors.document.valid_until_ts;
    expect(verifyKeyDocument(vectors.document, { expectedServer: server, now: end + KEY_DOCUMENT_CLOCK_SKEW_MS }).ok).toBe(true);
    expect(verifyKeyDocument(vectors.document, { expectedServer: server, now: end + KEY_DOCUMENT_CLOCK_SKEW_MS + 1 })).toMatchObject({
      ok: false,
      kind: 'expired',
    });
  });

  it('relies on a document for at most MAX_KEY_VALIDITY_MS after verifying it', () => {
    const doc = buildKeyDocument({ ...params, validForMs: MAX_KEY_VALIDITY_MS });
    const early = now - 24 * 60 * 60 * 1000;
    const result = verifyKeyDocument(doc, { expectedServer: server, now: early });
    if (!result.ok) throw new Error(result.reason);
    expect(result.validUntil).toBe(early + MAX_KEY_VALIDITY_MS);
    expect(result.keys.get(current.keyId)!.validUntil).toBe(early + MAX_KEY_VALIDITY_MS);
  });

  it.each(HOSTILE_VALUES)('returns a failure, never throws, for %s as the document', (_name, bad) => {
    expect(verifyKeyDocument(bad, { expectedServer: server, now })).toMatchObject({ ok: false, kind: 'malformed' });
    expect(verifyNotarized(bad, notaryName, notaryRing)).toMatchObject({ ok: false });
  });

  it.each(HOSTILE_VALUES)('returns a failure, never throws, for %s as options or their fields', (_name, bad) => {
    expect(verifyKeyDocument(vectors.document, bad as never).ok).toBe(false);
    expect(verifyKeyDocument(vectors.document, { expectedServer: bad as string, now }).ok).toBe(false);
    // 0 is a real timestamp (the document is then simply not yet expired).
    expect(verifyKeyDocument(vectors.document, { expectedServer: server, now: bad as number }).ok).toBe(bad === 0);
    expect(verifyNotarized(vectors.notarized, bad as string, notaryRing).ok).toBe(false);
    expect(verifyNotarized(vectors.notarized, notaryName, bad as never).ok).toBe(false);
  });

  it('survives a key ring that throws', () => {
    const throwing = () => {
      throw new Error('ring down');
    };
    expect(verifyNotarized(vectors.notarized, notaryName, throwing)).toMatchObject({ ok: false });
  });
});

describe('old keys after rotation', () => {
  const result = verifyKeyDocument(vectors.document, { expectedServer: server, now });
  if (!result.ok) throw new Error(result.reason);
  const expiredTs = vectors.keys.old.expired_ts;

  it.each([
    ['long before expiry', expiredTs - 86_400_000, true],
    ['just before expiry', expiredTs - 1, true],
    ['at expiry', expiredTs, false],
    ['after expiry', expiredTs + 1, false],
    ['now', now, false],
  ])('the old key verifies a signature made %s: %s', (_name, at, usable) => {
    expect(keyUsableAt(result.keys.get(old.keyId)!, at as number)).toBe(usable);
  });

  it.each([
    ['long ago', 0, true],
    ['now', now, true],
    ['at valid_until_ts', vectors.document.valid_until_ts, true],
    ['after valid_until_ts', vectors.document.valid_until_ts + 1, false],
  ])('the current key verifies a signature made %s: %s', (_name, at, usable) => {
    expect(keyUsableAt(result.keys.get(current.keyId)!, at as number)).toBe(usable);
  });

  it('caps an old key at the validity of the document that lists it', () => {
    const doc = buildKeyDocument({ ...params, old: [{ keyId: old.keyId, publicKey: old.publicKey, expiredTs: now }], validForMs: 1000 });
    const v = verifyKeyDocument(doc, { expectedServer: server, now });
    expect(v.ok && v.keys.get(old.keyId)).toMatchObject({ validUntil: now, expired: true });
  });
});

describe('notarize / verifyNotarized', () => {
  it('reproduces the notarized vector, keeping the self-signature', () => {
    expect(notarize(vectors.document, notaryName, notaryKey)).toEqual(vectors.notarized);
    expect(signaturesOf(vectors.notarized)[server]).toEqual(signaturesOf(vectors.document)[server]);
    expect(verifyKeyDocument(vectors.notarized, { expectedServer: server, now }).ok).toBe(true);
  });

  it('verifies the notary signature with the configured notary key', () => {
    expect(verifyNotarized(vectors.notarized, notaryName, notaryRing)).toEqual({ ok: true, keyId: notaryKey.keyId });
  });

  it('refuses a document the notary did not sign', () => {
    expect(verifyNotarized(vectors.document, notaryName, notaryRing)).toMatchObject({
      ok: false,
      reason: expect.stringContaining('no signature by n.test'),
    });
  });

  it('refuses a notary signature forged with another key under the notary key ID', () => {
    const impostor = signingKeyFromSeed(seedOf(vectors.keys.stranger.seed), notaryKey.keyId);
    const forged = notarize(vectors.document, notaryName, impostor);
    expect(verifyNotarized(forged, notaryName, notaryRing)).toMatchObject({ ok: false, reason: expect.stringContaining('bad signature') });
  });

  it('refuses a notary signature moved onto another document', () => {
    const other = buildKeyDocument({ ...params, validForMs: vectors.valid_for_ms + 1 });
    const moved = { ...other, signatures: { ...other.signatures, [notaryName]: signaturesOf(vectors.notarized)[notaryName]! } };
    expect(verifyNotarized(moved, notaryName, notaryRing)).toMatchObject({ ok: false });
  });

  it('refuses a notary signature under a key the configuration does not list', () => {
    const otherNotary = generateSigningKey();
    expect(verifyNotarized(notarize(vectors.document, notaryName, otherNotary), notaryName, notaryRing)).toMatchObject({ ok: false });
  });

  it("drops other notaries' signatures and lets a server notarize its own document", () => {
    const twice = notarize(notarize(vectors.document, 'm.test', stranger), notaryName, notaryKey);
    expect(Object.keys(twice.signatures).sort()).toEqual([server, notaryName].sort());
    const own = notarize(vectors.document, server, current);
    expect(own.signatures).toEqual(vectors.document.signatures);
  });

  it.each(HOSTILE_VALUES)('throws a TypeError naming the parameter for %s', (_name, bad) => {
    expect(() => notarize(bad as never, notaryName, notaryKey)).toThrow(/^doc: /);
    expect(() => notarize(vectors.document, bad as string, notaryKey)).toThrow(new TypeError('notaryName: expected a server name'));
    expect(() => notarize(vectors.document, notaryName, bad as never)).toThrow(/^notaryKey: /);
  });
});

describe('buildKeyDocument rejects bad input', () => {
  it.each([
    ['serverName', { serverName: 'not a name' }, /^serverName: /],
    ['current', { current: { keyId: 'x' } }, /^current: /],
    ['current key ID', { current: { ...current, keyId: 'bad-id' } }, /^current: /],
    ['now', { now: -1 }, /^now: /],
    ['validForMs zero', { validForMs: 0 }, /^validForMs: /],
    ['validForMs over 7 days', { validForMs: MAX_KEY_VALIDITY_MS + 1 }, /^validForMs: /],
    ['old not an array', { old: 'x' }, /^old: /],
    ['old key ID', { old: [{ keyId: 'bad-id', publicKey: old.publicKey, expiredTs: 1 }] }, /^old\[0\]\.keyId: /],
    ['old key equal to current', { old: [{ keyId: current.keyId, publicKey: old.publicKey, expiredTs: 1 }] }, /is the current key/],
    [
      'old key listed twice',
      {
        old: [
          { keyId: old.keyId, publicKey: old.publicKey, expiredTs: 1 },
          { keyId: old.keyId, publicKey: old.publicKey, expiredTs: 2 },
        ],
      },
      /^old\[1\]\.keyId: .* listed twice/,
    ],
    [
      'old key expiring in the future',
      { old: [{ keyId: old.keyId, publicKey: old.publicKey, expiredTs: now + 1 }] },
      /^old\[0\]\.expiredTs: /,
    ],
    ['old public key as a private key', { old: [{ keyId: old.keyId, publicKey: old.privateKey, expiredTs: 1 }] }, /^old\[0\]\.publicKey: /],
    [
      'old public key as a padded string',
      { old: [{ keyId: old.keyId, publicKey: publicKeyB64u(old.publicKey) + '=', expiredTs: 1 }] },
      /^old\[0\]\.publicKey: /,
    ],
    ['17 old keys', { old: Array.from({ length: 17 }, (_, i) => ({ keyId: `k${i}`, publicKey: old.publicKey, expiredTs: 1 })) }, /^old: /],
    ['a fingerprint in hex', { tlsFingerprints: ['ab'.repeat(32)] }, /^tlsFingerprints\[0\]: /],
    [
      'a fingerprint twice',
      { tlsFingerprints: [vectors.tls_fingerprints[0], vectors.tls_fingerprints[0]] },
      /^tlsFingerprints\[1\]: listed twice/,
    ],
    ['9 fingerprints', { tlsFingerprints: Array.from({ length: 9 }, () => vectors.tls_fingerprints[0]) }, /^tlsFingerprints: /],
  ])('%s', (_name, change, message) => {
    expect(() => buildKeyDocument({ ...params, ...(change as object) })).toThrow(message);
  });

  it('accepts old keys given as base64url', () => {
    const doc = buildKeyDocument({
      ...params,
      old: [{ keyId: old.keyId, publicKey: vectors.keys.old.public_key, expiredTs: vectors.keys.old.expired_ts }],
    });
    expect(doc).toEqual(vectors.document);
  });

  it.each(HOSTILE_VALUES)('throws a TypeError for %s as params', (_name, bad) => {
    expect(() => buildKeyDocument(bad as never)).toThrow(TypeError);
  });
});

describe('notary query schemas', () => {
  it.each([
    ['all keys of a server', { server_keys: { 'b.test': { '*': {} } } }, true],
    ['one key with a freshness floor', { server_keys: { 'b.test:8448': { 'ed25519:a_1': { minimum_valid_until_ts: now } } } }, true],
    ['no server', { server_keys: {} }, false],
    ['no key for a server', { server_keys: { 'b.test': {} } }, false],
    ['a key without the algorithm', { server_keys: { 'b.test': { a_1: {} } } }, false],
    ['a bad server name', { server_keys: { 'b test': { '*': {} } } }, false],
    ['an unknown criterion', { server_keys: { 'b.test': { '*': { since: 1 } } } }, false],
    ['33 servers', { server_keys: Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`s${i}.test`, { '*': {} }])) }, false],
  ])('request: %s', (_name, body, ok) => {
    expect(check(KeyQueryRequest, body).ok).toBe(ok);
  });

  it('response: notarized documents, each checked in full', () => {
    expect(check(KeyQueryResponse, { server_keys: [vectors.notarized] }).ok).toBe(true);
    expect(check(KeyQueryResponse, { server_keys: [{ ...vectors.notarized, extra: 1 }] }).ok).toBe(false);
    expect(check(KeyQueryResponse, { server_keys: Array.from({ length: 65 }, () => vectors.notarized) }).ok).toBe(false);
  });
});
