// Regenerates key-documents.json:
// `npx tsx federation/test/keys-docs/vectors/generate-key-documents.ts && npx biome format --write federation/test/keys-docs/vectors`.
// Ed25519 is deterministic (RFC 8032 §5.1.6), so the output only changes with the code.
// documents.test.ts recomputes the reference document's signature with noble, sharing no code with src/.
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { canonicalJson } from '../../../src/canonical/index.js';
import { buildKeyDocument, notarize } from '../../../src/keys/documents.js';
import { publicKeyB64u, signBytes, signingKeyFromSeed } from '../../../src/keys/index.js';

const seeds = {
  current: '101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f',
  old: '303132333435363738393a3b3c3d3e3f404142434445464748494a4b4c4d4e4f',
  notary: '505152535455565758595a5b5c5d5e5f606162636465666768696a6b6c6d6e6f',
  stranger: '707172737475767778797a7b7c7d7e7f808182838485868788898a8b8c8d8e8f',
};
const key = (name: keyof typeof seeds, keyId: string) => signingKeyFromSeed(Buffer.from(seeds[name], 'hex'), keyId);
const current = key('current', 'a_current');
const old = key('old', 'a_old');
const notary = key('notary', 'a_notary');
const stranger = key('stranger', 'a_stranger');

const server = 'b.test';
const notaryName = 'n.test';
const now = 1_700_000_000_000;
const validForMs = 24 * 60 * 60 * 1000;
const oldExpiredTs = 1_690_000_000_000;
// SHA-256 of the strings "cert-1" and "cert-2": stand-ins for DER certificates.
const tlsFingerprints = ['cert-1', 'cert-2'].map((text) => createHash('sha256').update(text).digest('base64url'));

const params = {
  serverName: server,
  current,
  old: [{ keyId: old.keyId, publicKey: old.publicKey, expiredTs: oldExpiredTs }],
  tlsFingerprints,
  validForMs,
  now,
};
const document = buildKeyDocument(params);
const notarized = notarize(document, notaryName, notary);

type Doc = Record<string, unknown>;
const clone = (value: unknown): Doc => JSON.parse(JSON.stringify(value));
// Signs an arbitrary object as `signer` would: for documents buildKeyDocument refuses to make.
function sign(unsigned: Doc, signer: string, with_: typeof current): Doc {
  const { signatures: _s, ...rest } = unsigned;
  const sig = Buffer.from(signBytes(Buffer.from(canonicalJson(rest)), with_.privateKey)).toString('base64url');
  return { ...rest, signatures: { [signer]: { [`ed25519:${with_.keyId}`]: sig } } };
}

const base = clone(document);
const refused: Array<{ name: string; document: unknown; now?: number; kind: string }> = [];
const add = (name: string, doc: unknown, kind: string, at?: number) =>
  refused.push({ name, document: doc, kind, ...(at === undefined ? {} : { now: at }) });

add('a document naming another server', buildKeyDocument({ ...params, serverName: 'c.test' }), 'wrong_server');
add('a document naming the asking server with a port', buildKeyDocument({ ...params, serverName: 'b.test:8448' }), 'wrong_server');
{
  const doc = clone(document);
  (doc.verify_keys as Doc)['ed25519:a_current'] = { key: publicKeyB64u(stranger.publicKey) };
  add('a tampered verify key', doc, 'signature');
}
add('a tampered valid_until_ts', { ...clone(document), valid_until_ts: document.valid_until_ts + 1 }, 'signature');
{
  const doc = clone(document);
  (doc.old_verify_keys as Doc)['ed25519:a_old'] = { key: publicKeyB64u(old.publicKey), expired_ts: oldExpiredTs + 1 };
  add('a tampered expired_ts', doc, 'signature');
}
add('a dropped TLS fingerprint', { ...clone(document), tls_fingerprints: [{ sha256: tlsFingerprints[0] }] }, 'signature');
add('expired beyond the clock skew', document, 'expired', document.valid_until_ts + 60_001);
add('self-signed by its old key only', sign(base, server, old), 'signature');
add('signed by a key it does not list', sign(base, server, stranger), 'signature');
add('signed by the notary only', { ...clone(document), signatures: { [notaryName]: notarized.signatures[notaryName] } }, 'signature');
add('no signatures', { ...clone(document), signatures: {} }, 'signature');
add(
  'a key both current and old',
  sign({ ...base, old_verify_keys: { 'ed25519:a_current': { key: publicKeyB64u(current.publicKey), expired_ts: 1 } } }, server, current),
  'malformed',
);
add(
  'the identity point as a key',
  sign({ ...base, verify_keys: { ...(base.verify_keys as Doc), 'ed25519:a_weak': { key: 'AQ' + 'A'.repeat(41) } } }, server, current),
  'malformed',
);
add('a padded key', { ...base, verify_keys: { 'ed25519:a_current': { key: publicKeyB64u(current.publicKey) + '=' } } }, 'malformed');
add('an unknown member', { ...base, comment: 'hi' }, 'malformed');
add('a key name without the algorithm', { ...base, verify_keys: { a_current: { key: publicKeyB64u(current.publicKey) } } }, 'malformed');
add('no current key', { ...base, verify_keys: {} }, 'malformed');
add(
  '17 old keys',
  {
    ...base,
    old_verify_keys: Object.fromEntries(
      Array.from({ length: 17 }, (_, i) => [`ed25519:k${i}`, { key: publicKeyB64u(old.publicKey), expired_ts: 1 }]),
    ),
  },
  'malformed',
);
add('9 TLS fingerprints', { ...base, tls_fingerprints: Array.from({ length: 9 }, () => ({ sha256: tlsFingerprints[0] })) }, 'malformed');
add('a fractional valid_until_ts', { ...base, valid_until_ts: 1.5 }, 'malformed');
add('a negative valid_until_ts', { ...base, valid_until_ts: -1 }, 'malformed');
add('valid_until_ts beyond 2^53', { ...base, valid_until_ts: 2 ** 53 }, 'malformed');
add('a string valid_until_ts', { ...base, valid_until_ts: String(document.valid_until_ts) }, 'malformed');
add('a short signature', { ...base, signatures: { [server]: { 'ed25519:a_current': 'AAAA' } } }, 'malformed');
add('a server name with a path', { ...base, server_name: 'b.test/evil' }, 'malformed');
add('an array', [base], 'malformed');

const out = {
  source: 'Generated by generate-key-documents.ts with this implementation; documents.test.ts recomputes the signature with noble.',
  server,
  now,
  valid_for_ms: validForMs,
  keys: {
    current: { seed: seeds.current, key_id: current.keyId, public_key: publicKeyB64u(current.publicKey) },
    old: { seed: seeds.old, key_id: old.keyId, public_key: publicKeyB64u(old.publicKey), expired_ts: oldExpiredTs },
    notary: { seed: seeds.notary, key_id: notary.keyId, public_key: publicKeyB64u(notary.publicKey), server: notaryName },
    stranger: { seed: seeds.stranger, key_id: stranger.keyId, public_key: publicKeyB64u(stranger.publicKey) },
  },
  tls_fingerprints: tlsFingerprints,
  document,
  notarized,
  refused,
};
const file = new URL('./key-documents.json', import.meta.url);
writeFileSync(file, JSON.stringify(out, null, 2) + '\n');
console.log(`wrote the reference document, its notarized form and ${refused.length} refused cases to ${file.pathname}`);
