/**
 * The hot primitives of ciphersuite 3 (RFC 9420 §17.1, MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519)
 * behind one small interface, so the MLS layer runs on native code where there is some:
 * node:crypto in Node, WebCrypto Ed25519 in browsers that have it, @noble everywhere else.
 * ts-mls's default provider imports a fresh WebCrypto key for every signature, HMAC and
 * verify; that per-call import, not the maths, capped a device at ≈ 370 messages/s.
 *
 * Every function is synchronous where the platform allows it; the ts-mls adapter wraps
 * results in promises.
 */
export type SignerKind = 'node' | 'webcrypto' | 'noble';

export interface Primitives {
  /** Which Ed25519 implementation signs and verifies. */
  readonly signer: SignerKind;
  sha256(data: Uint8Array): Uint8Array;
  hmacSha256(key: Uint8Array, data: Uint8Array): Uint8Array;
  /** ChaCha20-Poly1305 (RFC 8439): ciphertext with the 16-byte tag appended. */
  chachaSeal(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array): Uint8Array;
  /** Throws on a bad tag. */
  chachaOpen(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, ciphertext: Uint8Array): Uint8Array;
  /** Signs with a 32-byte Ed25519 seed (RFC 8032 §5.1.5 secret key). */
  ed25519Sign(seed: Uint8Array, message: Uint8Array): Promise<Uint8Array>;
  /** False, never a throw, for hostile input. */
  ed25519Verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): Promise<boolean>;
  ed25519PublicKey(seed: Uint8Array): Uint8Array;
  /** X25519 (RFC 7748 §5); throws on an all-zero result (RFC 9180 §7.1.4). */
  x25519(secretKey: Uint8Array, publicKey: Uint8Array): Uint8Array;
  x25519PublicKey(secretKey: Uint8Array): Uint8Array;
  /** A fresh ephemeral key pair's DH with `publicKey`: `{ dh, ephemeralPublic }` (RFC 9180 Encap's first half). */
  x25519Ephemeral(publicKey: Uint8Array): { dh: Uint8Array; ephemeralPublic: Uint8Array };
  randomBytes(n: number): Uint8Array;
}

/** A small cache of imported keys: importing costs more than the operation it serves. */
export class KeyCache<K> {
  readonly #map = new Map<string, K>();
  constructor(private readonly limit = 4096) {}

  get(bytes: Uint8Array, make: () => K): K {
    const id = keyId(bytes);
    let key = this.#map.get(id);
    if (key === undefined) {
      // Dropping everything at the limit is cheaper than LRU bookkeeping and bounds memory.
      if (this.#map.size >= this.limit) this.#map.clear();
      key = make();
      this.#map.set(id, key);
    }
    return key;
  }
}

function keyId(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i] as number);
  return s;
}

/** Ed25519 keys from ts-mls may be a raw 32-byte seed or PKCS#8 (48 bytes, seed last). */
export function seedOf(signKey: Uint8Array): Uint8Array {
  if (signKey.length === 32) return signKey;
  if (signKey.length === 48) return signKey.subarray(16);
  throw new TypeError(`signKey: expected a 32-byte Ed25519 seed or 48-byte PKCS#8, got ${signKey.length} bytes`);
}

export function assertNonZero(shared: Uint8Array): Uint8Array {
  let acc = 0;
  for (const b of shared) acc |= b;
  if (acc === 0) throw new Error('X25519: all-zero shared secret (small-order public key)');
  return shared;
}

const P = 2n ** 255n - 19n;
// y of the order-8 points; P − Y8 is the other pair.
const Y8 = 0x05fc536d880238b13933c6d305acdfd5f098eff289f4c345b027b2c28f95e826n;
const SMALL_ORDER_Y = new Set([0n, 1n, P - 1n, Y8, P - Y8]);

/**
 * Ed25519 public keys every signer here refuses before verifying (docs/protocol.md): small-order
 * points, under which OpenSSL and BoringSSL accept a signature for any message while noble
 * refuses them, and non-canonical encodings (y ≥ p). Devices on different signers must never
 * disagree about a commit's signature, or the group forks.
 */
export function isWeakEd25519Key(raw: Uint8Array): boolean {
  if (raw.length !== 32) return true;
  let y = 0n;
  for (let i = 31; i >= 0; i--) y = (y << 8n) | BigInt(i === 31 ? (raw[i] as number) & 0x7f : (raw[i] as number));
  return y >= P || SMALL_ORDER_Y.has(y);
}
