import type { KeyObject } from 'node:crypto';
import { check, isServerName, MAX_KEY_DOCUMENT_KEYS, MAX_TLS_FINGERPRINTS, ServerKeyDocument } from '@parley/schemas';
import { canonicalJson } from '../canonical/index.js';
import { checkServerSignature, type SignatureCheck, signatureEntry } from '../events/signatures.js';
import { isEd25519Key } from './ed25519.js';
import { KEY_ID_PATTERN, type KeyRing, publicKeyB64u, publicKeyFromB64u, type SigningKey } from './signing-key.js';

/**
 * Server key documents (docs/protocol.md, "Federation"), pure: building the one this server publishes at
 * `GET /federation/v1/keys`, verifying one fetched from a peer or a notary, and the notary's
 * counter-signature. Fetching and caching live in key-store.ts.
 */

/** How far past `valid_until_ts` a document is still accepted, for clocks that disagree. */
export const KEY_DOCUMENT_CLOCK_SKEW_MS = 60_000;
/**
 * A document vouches for its current keys for at most this long after it is verified,
 * whatever `valid_until_ts` says, so a document served once (by a man in the middle, or by a
 * server that later loses its key) is not trusted forever. Synapse caps at 7 days too.
 */
export const MAX_KEY_VALIDITY_MS = 7 * 24 * 60 * 60 * 1000;

/**
 * A key as a verified document describes it. A current key verifies signatures made up to
 * and including `validUntil`; an old key (`expired`) only those made strictly before its
 * `expired_ts`, which `validUntil` then holds.
 */
export interface VerifiedKey {
  publicKey: KeyObject;
  validUntil: number;
  expired?: true;
}

export type KeyDocumentFailureKind = 'malformed' | 'wrong_server' | 'expired' | 'signature';

export type VerifyKeyDocumentResult =
  | {
      ok: true;
      serverName: string;
      /** By key ID, without the `ed25519:` prefix (what a KeyRing is asked for). */
      keys: Map<string, VerifiedKey>;
      tlsFingerprints: string[];
      /** `valid_until_ts`, capped at `now + MAX_KEY_VALIDITY_MS`: how long to rely on the document. */
      validUntil: number;
      document: ServerKeyDocument;
    }
  | { ok: false; kind: KeyDocumentFailureKind; reason: string };

export interface BuildKeyDocumentParams {
  serverName: string;
  current: SigningKey;
  old?: ReadonlyArray<{ keyId: string; publicKey: KeyObject | string; expiredTs: number }>;
  /** SHA-256 of each DER certificate the federation listener may present, unpadded base64url. */
  tlsFingerprints?: readonly string[];
  validForMs: number;
  now: number;
  /** The relay this server is reached through while it holds a reservation there (docs/protocol.md). */
  relay?: { via: string; until: number };
  /** Capabilities offered to other servers, with their published limits. */
  capabilities?: ServerKeyDocument['capabilities'];
}

/** True when `key` verifies a signature made at `at` (ms since the epoch). */
export function keyUsableAt(key: VerifiedKey, at: number): boolean {
  return key.expired === true ? at < key.validUntil : at <= key.validUntil;
}

const B64U_32 = /^[A-Za-z0-9_-]{43}$/;

/** The signed bytes: the canonical document without `signatures` and `unsigned` (docs/protocol.md). */
function signingPayload(doc: object): Buffer {
  const { signatures: _s, unsigned: _u, ...signed } = doc as Record<string, unknown>;
  return Buffer.from(canonicalJson(signed, 'document'));
}

function isSigningKey(key: unknown): key is SigningKey {
  const k = key as SigningKey | null;
  return (
    typeof k === 'object' &&
    k !== null &&
    typeof k.keyId === 'string' &&
    KEY_ID_PATTERN.test(k.keyId) &&
    isEd25519Key(k.privateKey, 'private') &&
    isEd25519Key(k.publicKey, 'public')
  );
}

function isTimestamp(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/**
 * The document this server publishes, self-signed with `current`. Throws a TypeError naming
 * the bad parameter; the result always passes verifyKeyDocument for `serverName` at `now`.
 */
export function buildKeyDocument(params: BuildKeyDocumentParams): ServerKeyDocument {
  if (typeof params !== 'object' || params === null) throw new TypeError('params: expected an object');
  const { serverName, current, old = [], tlsFingerprints = [], validForMs, now } = params;
  if (!isServerName(serverName)) throw new TypeError('serverName: expected a server name');
  if (!isSigningKey(current)) throw new TypeError('current: expected a SigningKey with an Ed25519 key pair');
  if (!isTimestamp(now)) throw new TypeError('now: expected a non-negative integer (ms)');
  if (!isTimestamp(validForMs) || validForMs === 0 || validForMs > MAX_KEY_VALIDITY_MS) {
    throw new TypeError(`validForMs: expected a positive integer of at most ${MAX_KEY_VALIDITY_MS} (7 days)`);
  }
  if (!isTimestamp(now + validForMs)) throw new TypeError('now: too large');
  if (!Array.isArray(old) || old.length > MAX_KEY_DOCUMENT_KEYS) {
    throw new TypeError(`old: expected an array of at most ${MAX_KEY_DOCUMENT_KEYS} keys`);
  }
  if (!Array.isArray(tlsFingerprints) || tlsFingerprints.length > MAX_TLS_FINGERPRINTS) {
    throw new TypeError(`tlsFingerprints: expected an array of at most ${MAX_TLS_FINGERPRINTS} fingerprints`);
  }

  const oldVerifyKeys: ServerKeyDocument['old_verify_keys'] = {};
  old.forEach((entry, i) => {
    const name = `old[${i}]`;
    if (typeof entry !== 'object' || entry === null) throw new TypeError(`${name}: expected { keyId, publicKey, expiredTs }`);
    if (typeof entry.keyId !== 'string' || !KEY_ID_PATTERN.test(entry.keyId))
      throw new TypeError(`${name}.keyId: expected [A-Za-z0-9_]{1,64}`);
    if (entry.keyId === current.keyId) throw new TypeError(`${name}.keyId: ${entry.keyId} is the current key`);
    if (Object.hasOwn(oldVerifyKeys, `ed25519:${entry.keyId}`)) throw new TypeError(`${name}.keyId: ${entry.keyId} is listed twice`);
    // An old key is one already retired: a future expiry would make it a current key by another name.
    if (!isTimestamp(entry.expiredTs) || entry.expiredTs > now)
      throw new TypeError(`${name}.expiredTs: expected a timestamp not after now`);
    oldVerifyKeys[`ed25519:${entry.keyId}`] = { key: encodePublicKey(entry.publicKey, `${name}.publicKey`), expired_ts: entry.expiredTs };
  });

  const seen = new Set<string>();
  const fingerprints = tlsFingerprints.map((fp, i) => {
    if (typeof fp !== 'string' || !isCanonicalB64u32(fp))
      throw new TypeError(`tlsFingerprints[${i}]: expected a SHA-256 as unpadded base64url`);
    if (seen.has(fp)) throw new TypeError(`tlsFingerprints[${i}]: listed twice`);
    seen.add(fp);
    return { sha256: fp };
  });

  const unsigned: Omit<ServerKeyDocument, 'signatures'> = {
    server_name: serverName,
    verify_keys: { [`ed25519:${current.keyId}`]: { key: publicKeyB64u(current.publicKey) } },
    old_verify_keys: oldVerifyKeys,
    tls_fingerprints: fingerprints,
    valid_until_ts: now + validForMs,
  };
  if (params.relay !== undefined) unsigned.relay = { via: params.relay.via, until: params.relay.until };
  if (params.capabilities !== undefined) unsigned.capabilities = params.capabilities;
  const doc: ServerKeyDocument = { ...unsigned, signatures: { [serverName]: signatureEntry(signingPayload(unsigned), current) } };
  const shape = check(ServerKeyDocument, doc);
  if (!shape.ok) throw new TypeError(`params: ${shape.message}`);
  return doc;
}

function encodePublicKey(key: unknown, name: string): string {
  if (typeof key === 'string') {
    try {
      publicKeyFromB64u(key);
    } catch (err) {
      throw new TypeError(`${name}: ${(err as Error).message}`);
    }
    return key;
  }
  if (!isEd25519Key(key, 'public')) throw new TypeError(`${name}: expected an Ed25519 public KeyObject or its base64url`);
  return publicKeyB64u(key);
}

function isCanonicalB64u32(text: string): boolean {
  return B64U_32.test(text) && Buffer.from(text, 'base64url').toString('base64url') === text;
}

export interface VerifyKeyDocumentOptions {
  /** The server that was asked (docs/protocol.md): the document must name it. */
  expectedServer: string;
  now: number;
}

/**
 * Verifies a key document fetched for `expectedServer`, directly or through a notary:
 * shape and size caps, `server_name` equal to the server asked (a document's identity comes
 * from who was asked, never from the document, docs/protocol.md), not expired (with
 * KEY_DOCUMENT_CLOCK_SKEW_MS of slack), and self-signed by one of its own current keys.
 * Old keys are returned marked `expired`, usable only for signatures made before their
 * `expired_ts`. Never throws.
 */
export function verifyKeyDocument(doc: unknown, options: VerifyKeyDocumentOptions): VerifyKeyDocumentResult {
  try {
    const { expectedServer, now } = options ?? ({} as VerifyKeyDocumentOptions);
    if (!isServerName(expectedServer)) return { ok: false, kind: 'malformed', reason: 'options.expectedServer: expected a server name' };
    if (!isTimestamp(now)) return { ok: false, kind: 'malformed', reason: 'options.now: expected a non-negative integer (ms)' };
    const shape = check(ServerKeyDocument, doc);
    if (!shape.ok) return { ok: false, kind: 'malformed', reason: `key document: ${shape.message}` };
    const document = shape.value;
    if (document.server_name !== expectedServer) {
      return {
        ok: false,
        kind: 'wrong_server',
        reason: `key document names ${document.server_name}, not ${expectedServer} that was asked`,
      };
    }
    if (document.valid_until_ts + KEY_DOCUMENT_CLOCK_SKEW_MS < now) {
      return { ok: false, kind: 'expired', reason: `key document of ${expectedServer} expired at ${document.valid_until_ts}` };
    }

    const validUntil = Math.min(document.valid_until_ts, now + MAX_KEY_VALIDITY_MS);
    const keys = new Map<string, VerifiedKey>();
    for (const [name, { key }] of Object.entries(document.verify_keys)) {
      const publicKey = parseKey(key);
      if (!publicKey) return { ok: false, kind: 'malformed', reason: `key document: verify_keys["${name}"] is not a usable Ed25519 key` };
      keys.set(name.slice('ed25519:'.length), { publicKey, validUntil });
    }
    const current = new Map([...keys].map(([id, k]) => [id, k.publicKey]));
    const ring: KeyRing = (server, keyId) => (server === expectedServer ? current.get(keyId) : undefined);
    const signature = checkServerSignature(document.signatures, expectedServer, signingPayload(document), ring);
    if (!signature.ok) return { ok: false, kind: 'signature', reason: `key document of ${expectedServer}: ${signature.reason}` };

    for (const [name, { key, expired_ts }] of Object.entries(document.old_verify_keys)) {
      const keyId = name.slice('ed25519:'.length);
      if (keys.has(keyId)) return { ok: false, kind: 'malformed', reason: `key document: ${name} is both current and old` };
      const publicKey = parseKey(key);
      if (!publicKey)
        return { ok: false, kind: 'malformed', reason: `key document: old_verify_keys["${name}"] is not a usable Ed25519 key` };
      // The document cannot vouch for an old key beyond its own validity.
      keys.set(keyId, { publicKey, validUntil: Math.min(expired_ts, validUntil), expired: true });
    }
    const tlsFingerprints = [...new Set(document.tls_fingerprints.map((fp) => fp.sha256))];
    return { ok: true, serverName: expectedServer, keys, tlsFingerprints, validUntil, document };
  } catch (err) {
    return { ok: false, kind: 'malformed', reason: `key document: ${describeError(err)}` };
  }
}

function parseKey(encoded: string): KeyObject | undefined {
  try {
    return publicKeyFromB64u(encoded);
  } catch {
    return undefined;
  }
}

/** An error's message, or a placeholder when even reading it throws. */
export function describeError(err: unknown): string {
  try {
    return err instanceof Error ? err.message : String(err);
  } catch {
    return 'unreadable error';
  }
}

/**
 * A notary's counter-signature (docs/protocol.md): `notaryName` vouches that it fetched `doc` from
 * the server it names. Other notaries' signatures are dropped: the result carries what the
 * server signed and what this notary signed, nothing a third party added on the way. The
 * caller verifies `doc` first. Throws a TypeError naming the bad parameter.
 */
export function notarize(doc: ServerKeyDocument, notaryName: string, notaryKey: SigningKey): ServerKeyDocument {
  const shape = check(ServerKeyDocument, doc);
  if (!shape.ok) throw new TypeError(`doc: ${shape.message}`);
  if (!isServerName(notaryName)) throw new TypeError('notaryName: expected a server name');
  if (!isSigningKey(notaryKey)) throw new TypeError('notaryKey: expected a SigningKey with an Ed25519 key pair');
  const server = doc.server_name;
  const entry = signatureEntry(signingPayload(doc), notaryKey);
  // A notary answering for itself adds to its own entry rather than replacing its self-signature.
  const signatures =
    notaryName === server
      ? { [server]: { ...doc.signatures[server], ...entry } }
      : { ...(Object.hasOwn(doc.signatures, server) ? { [server]: doc.signatures[server]! } : {}), [notaryName]: entry };
  const notarized: ServerKeyDocument = { ...doc, signatures };
  const again = check(ServerKeyDocument, notarized);
  if (!again.ok) throw new TypeError(`doc: ${again.message}`);
  return notarized;
}

/**
 * Checks that `notaryName` signed `doc` with a key `notaryKeyRing` knows (the notary keys
 * come from configuration, not from the notary's own answer). Only the notary's signature:
 * run verifyKeyDocument as well. Never throws.
 */
export function verifyNotarized(doc: unknown, notaryName: string, notaryKeyRing: KeyRing): SignatureCheck {
  try {
    if (!isServerName(notaryName)) return { ok: false, reason: 'notaryName: expected a server name' };
    if (typeof notaryKeyRing !== 'function') return { ok: false, reason: 'notaryKeyRing: expected a function' };
    const shape = check(ServerKeyDocument, doc);
    if (!shape.ok) return { ok: false, reason: `key document: ${shape.message}` };
    const signature = checkServerSignature(shape.value.signatures, notaryName, signingPayload(shape.value), notaryKeyRing);
    return signature.ok ? signature : { ok: false, reason: `notary ${notaryName}: ${signature.reason}` };
  } catch (err) {
    return { ok: false, reason: `key document: ${describeError(err)}` };
  }
}

/**
 * Two documents describing one key ID (the same public key: a different one is refused before
 * this, see KeyStore). A retirement is kept once seen, the earliest one winning, since
 * only the server (holding a current key) can sign one; otherwise the longer validity.
 */
export function mergeKey(known: VerifiedKey, incoming: VerifiedKey): VerifiedKey {
  if (!known.publicKey.equals(incoming.publicKey)) return known;
  if (known.expired && incoming.expired) return known.validUntil <= incoming.validUntil ? known : incoming;
  if (known.expired) return known;
  if (incoming.expired) return incoming;
  return known.validUntil >= incoming.validUntil ? known : incoming;
}
