import type { KeyObject } from 'node:crypto';

/**
 * Public keys that OpenSSL would use but noble's strict verifier (`zip215: false`) refuses,
 * so that a server never accepts a signature a browser refuses (docs/protocol.md):
 *
 * - small-order points (the 8 points of the torsion subgroup): under them [k]A vanishes
 *   after cofactor clearing, so one signature verifies for every message; RFC 8032 §5.1.7
 *   leaves refusing them to the application, libsodium and noble refuse them;
 * - non-canonical encodings, y ≥ p (RFC 8032 §5.1.3 step 1 says decoding fails).
 *
 * The list is of y coordinates with the sign bit cleared, so it covers both signs of x.
 */

const P = 2n ** 255n - 19n;
// y of the order-8 points; p − Y8 is the other pair (computed as [L]P for a point P of order 8L).
const Y8 = 0x05fc536d880238b13933c6d305acdfd5f098eff289f4c345b027b2c28f95e826n;
const SMALL_ORDER_Y = new Set([0n, 1n, P - 1n, Y8, P - Y8]);

const verdicts = new WeakMap<KeyObject, boolean>();

/** True for a 32-byte Ed25519 key encoding that is small-order or non-canonical. */
export function isWeakPublicKeyBytes(raw: Uint8Array): boolean {
  if (raw.length !== 32) return true;
  let y = 0n;
  // Little-endian, top bit is the sign of x (RFC 8032 §5.1.2).
  for (let i = 31; i >= 0; i--) y = (y << 8n) | BigInt(i === 31 ? raw[i]! & 0x7f : raw[i]!);
  return y >= P || SMALL_ORDER_Y.has(y);
}

/** Same check for a KeyObject, cached per key since verifiers reuse keys from a key ring. */
export function isWeakPublicKey(key: KeyObject): boolean {
  let weak = verdicts.get(key);
  if (weak === undefined) {
    const x = key.export({ format: 'jwk' }).x;
    weak = typeof x !== 'string' || isWeakPublicKeyBytes(Buffer.from(x, 'base64url'));
    verdicts.set(key, weak);
  }
  return weak;
}
