import * as ed from '@noble/ed25519';
import { sha512 } from '@noble/hashes/sha2.js';

/**
 * Ed25519 (RFC 8032 §5.1) for browsers and the sdk, on @noble/ed25519. Servers use
 * node:crypto (OpenSSL) instead, and a shared test holds both to the RFC 8032 §7.1 vectors
 * and one table of hostile inputs: a signature one side accepts, the other never refuses
 * (docs/protocol.md).
 */

// noble ships only async hashing; the sync API needs SHA-512 plugged in (noble README).
ed.hashes.sha512 = sha512;

const { Point } = ed;
const L = Point.CURVE().n;

function assertBytes(value: unknown, name: string, length?: number): asserts value is Uint8Array {
  if (!(value instanceof Uint8Array)) throw new TypeError(`${name}: expected a Uint8Array`);
  if (length !== undefined && value.length !== length) throw new TypeError(`${name}: expected ${length} bytes, got ${value.length}`);
}

/** The 32-byte public key of a 32-byte secret key (RFC 8032 §5.1.5). */
export function getPublicKey(secretKey: Uint8Array): Uint8Array {
  assertBytes(secretKey, 'secretKey', 32);
  return ed.getPublicKey(secretKey);
}

/** Deterministic signature (RFC 8032 §5.1.6). Throws a TypeError naming a bad argument. */
export function signEd25519(message: Uint8Array, secretKey: Uint8Array): Uint8Array {
  assertBytes(message, 'message');
  assertBytes(secretKey, 'secretKey', 32);
  return ed.sign(message, secretKey);
}

/**
 * Verifies (RFC 8032 §5.1.7); false, never a throw, for hostile input. Agreement with
 * OpenSSL takes two steps beyond noble's default:
 *
 * - `zip215: false`: strict decoding (y < p, no x = 0 with the sign bit set) and small-order
 *   public keys refused, which the server enforces on its side too;
 * - the cofactorless equation [S]B = R + [k]A. RFC 8032 §5.1.7 requires the cofactored one
 *   ([8][S]B = [8]R + [8][k]A) and allows this one; noble checks the former, OpenSSL the
 *   latter, so an R with a small-order component passes noble and fails OpenSSL. Every
 *   signature that passes the cofactorless equation passes the cofactored one, so checking
 *   both accepts exactly what OpenSSL accepts.
 */
export function verifyEd25519(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean {
  if (!(signature instanceof Uint8Array) || signature.length !== 64) return false;
  if (!(message instanceof Uint8Array)) return false;
  if (!(publicKey instanceof Uint8Array) || publicKey.length !== 32) return false;
  try {
    return ed.verify(signature, message, publicKey, { zip215: false }) && cofactorlessEquationHolds(signature, message, publicKey);
  } catch {
    return false;
  }
}

// Runs only after noble's strict verify passed, so R and A decode and S < L.
function cofactorlessEquationHolds(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean {
  const r = signature.subarray(0, 32);
  const s = bytesToNumberLE(signature.subarray(32));
  const R = Point.fromBytes(r, false);
  const A = Point.fromBytes(publicKey, false);
  // k = SHA-512(R || A || M) mod L, over the encodings as sent (RFC 8032 §5.1.7 step 2).
  const k = bytesToNumberLE(sha512(ed.etc.concatBytes(r, publicKey, message))) % L;
  return Point.BASE.multiply(s, false).equals(R.add(A.multiply(k, false)));
}

function bytesToNumberLE(bytes: Uint8Array): bigint {
  let n = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) n = (n << 8n) | BigInt(bytes[i]!);
  return n;
}
