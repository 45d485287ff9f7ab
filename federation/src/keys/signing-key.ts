import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject, randomBytes } from 'node:crypto';
import { isEd25519Key } from './ed25519.js';
import { isWeakPublicKeyBytes } from './weak-keys.js';

/** A server's signing key; signatures name it as `ed25519:<keyId>` (docs/protocol.md). */
export interface SigningKey {
  keyId: string;
  privateKey: KeyObject;
  publicKey: KeyObject;
}

export const KEY_ID_PATTERN = /^[A-Za-z0-9_]{1,64}$/;

/**
 * Resolves a server's public key by key ID (without the `ed25519:` prefix), or undefined when
 * it is not known. Verifiers take one so that key fetching and caching stay out of pure code.
 */
export type KeyRing = (server: string, keyId: string) => KeyObject | undefined;

/** A KeyRing over a fixed table `{ server: { keyId: publicKey } }`. */
export function keyRingOf(keys: Readonly<Record<string, Readonly<Record<string, KeyObject>>>>): KeyRing {
  return (server, keyId) => (Object.hasOwn(keys, server) && Object.hasOwn(keys[server]!, keyId) ? keys[server]![keyId] : undefined);
}

/** `a_` + 8 characters from 6 random bytes: fits `[A-Za-z0-9_]+`, as Synapse's `a_XXXX` IDs do. */
export function newKeyId(): string {
  // base64url may yield `-` and `_`; the key-ID alphabet has no `-`, and keeping `_` only as
  // the prefix separator keeps file names unambiguous.
  return 'a_' + randomBytes(6).toString('base64url').replace(/[-_]/g, '0');
}

export function generateSigningKey(): SigningKey {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return { keyId: newKeyId(), privateKey, publicKey };
}

// PKCS#8 wrapping of a raw 32-byte Ed25519 seed (RFC 8410 §7): node:crypto has no raw import.
const PKCS8_SEED_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

/** A signing key from a 32-byte RFC 8032 secret (seed), for fixtures and test vectors. */
export function signingKeyFromSeed(seed: Uint8Array, keyId: string): SigningKey {
  if (!(seed instanceof Uint8Array) || seed.length !== 32) throw new TypeError('seed: expected 32 bytes');
  if (typeof keyId !== 'string' || !KEY_ID_PATTERN.test(keyId)) throw new TypeError('keyId: expected [A-Za-z0-9_]{1,64}');
  const privateKey = createPrivateKey({ key: Buffer.concat([PKCS8_SEED_PREFIX, seed]), format: 'der', type: 'pkcs8' });
  return { keyId, privateKey, publicKey: createPublicKey(privateKey) };
}

/** The raw 32-byte public key (RFC 8032 §5.1.5) as unpadded base64url, as key documents carry it. */
export function publicKeyB64u(key: KeyObject): string {
  if (!isEd25519Key(key, 'public') && !isEd25519Key(key, 'private')) throw new TypeError('key: expected an Ed25519 KeyObject');
  const x = (key.type === 'public' ? key : createPublicKey(key)).export({ format: 'jwk' }).x;
  if (typeof x !== 'string') throw new TypeError('key: has no public part');
  return x;
}

const B64U_32 = /^[A-Za-z0-9_-]{43}$/;

/**
 * Parses a key from a key document. Throws a TypeError for anything but the canonical
 * unpadded base64url of 32 bytes (a second spelling of the same key would let two
 * documents disagree silently), and for small-order or non-canonical points (weak-keys.ts).
 */
export function publicKeyFromB64u(encoded: string): KeyObject {
  if (typeof encoded !== 'string' || !B64U_32.test(encoded)) throw new TypeError('publicKey: expected 43 characters of base64url');
  const raw = Buffer.from(encoded, 'base64url');
  if (raw.length !== 32 || raw.toString('base64url') !== encoded) throw new TypeError('publicKey: not canonical base64url');
  if (isWeakPublicKeyBytes(raw)) throw new TypeError('publicKey: small-order or non-canonical Ed25519 point');
  return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: encoded }, format: 'jwk' });
}
