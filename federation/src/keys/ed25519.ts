import { type KeyObject, sign, verify } from 'node:crypto';
import { isWeakPublicKey } from './weak-keys.js';

/**
 * Ed25519 (RFC 8032 §5.1) over node:crypto, which servers use because OpenSSL is far faster
 * than pure JS (docs/protocol.md). Browsers verify the same signatures with @noble/ed25519 in the
 * sdk; a shared test holds both to the RFC 8032 §7.1 vectors and to one table of hostile
 * inputs, so what one side accepts the other never refuses.
 */

export const SIGNATURE_BYTES = 64;

export function isEd25519Key(key: unknown, type: 'public' | 'private'): key is KeyObject {
  return (
    typeof key === 'object' &&
    key !== null &&
    (key as KeyObject).type === type &&
    (key as KeyObject).asymmetricKeyType === 'ed25519' &&
    typeof (key as KeyObject).export === 'function'
  );
}

/** Signs `message` (RFC 8032 §5.1.6). Throws a TypeError naming a bad argument. */
export function signBytes(message: Uint8Array, privateKey: KeyObject): Uint8Array {
  if (!(message instanceof Uint8Array)) throw new TypeError('message: expected a Uint8Array');
  if (!isEd25519Key(privateKey, 'private')) throw new TypeError('privateKey: expected an Ed25519 private KeyObject');
  // Ed25519 hashes internally, so the digest argument must be null (RFC 8032 §5.1.6).
  return new Uint8Array(sign(null, message, privateKey));
}

/**
 * Verifies `signature` over `message` (RFC 8032 §5.1.7). Returns false, never throws, for
 * anything hostile: wrong types or lengths, S ≥ L, undecodable points.
 *
 * OpenSSL accepts any message under a small-order public key (the identity key verifies
 * R = [s]B for every message), while noble's strict mode refuses such keys; we refuse them
 * here so both sides agree (weak-keys.ts).
 */
export function verifyBytes(signature: Uint8Array, message: Uint8Array, publicKey: KeyObject): boolean {
  if (!(signature instanceof Uint8Array) || signature.length !== SIGNATURE_BYTES) return false;
  if (!(message instanceof Uint8Array)) return false;
  if (!isEd25519Key(publicKey, 'public')) return false;
  try {
    if (isWeakPublicKey(publicKey)) return false;
    return verify(null, message, publicKey, signature);
  } catch {
    return false;
  }
}

/**
 * verifyBytes on libuv's thread pool (node:crypto `verify` with a callback): the same checks
 * and the same OpenSSL call, off the event loop, so many signatures (a room snapshot's) are
 * checked on every free core while the loop prepares the next ones. Resolves false, never
 * rejects, for anything verifyBytes refuses.
 */
export function verifyBytesAsync(signature: Uint8Array, message: Uint8Array, publicKey: KeyObject): Promise<boolean> {
  if (!(signature instanceof Uint8Array) || signature.length !== SIGNATURE_BYTES) return Promise.resolve(false);
  if (!(message instanceof Uint8Array)) return Promise.resolve(false);
  if (!isEd25519Key(publicKey, 'public')) return Promise.resolve(false);
  return new Promise((resolve) => {
    try {
      if (isWeakPublicKey(publicKey)) return resolve(false);
      verify(null, message, publicKey, signature, (err, ok) => resolve(err === null && ok === true));
    } catch {
      resolve(false);
    }
  });
}
