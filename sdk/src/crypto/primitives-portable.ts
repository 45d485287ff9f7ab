/// <reference lib="dom" />
import { chacha20poly1305 } from '@noble/ciphers/chacha.js';
import { x25519 } from '@noble/curves/ed25519.js';
import { hmac } from '@noble/hashes/hmac.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { getPublicKey, signEd25519, verifyEd25519 } from './ed25519.js';
import { assertNonZero, isWeakEd25519Key, KeyCache, type Primitives, seedOf } from './primitives.js';

// PKCS#8 prefix for an Ed25519 seed (RFC 8410 §7).
const PKCS8_PREFIX = Uint8Array.from([0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20]);

/**
 * Browsers (and any runtime without node:crypto): hashes and ChaCha20-Poly1305 from @noble
 * (synchronous, no per-call key import), Ed25519 from WebCrypto when the browser has it
 * (Chrome 137+, Firefox 129+, Safari 17+), else @noble/ed25519.
 */
export async function portablePrimitives(options: { webcrypto?: boolean } = {}): Promise<Primitives> {
  const subtle = options.webcrypto === false ? undefined : await ed25519Subtle();
  const base = {
    sha256: (data: Uint8Array) => sha256(data),
    hmacSha256: (key: Uint8Array, data: Uint8Array) => hmac(sha256, key, data),
    chachaSeal: (key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array) =>
      chacha20poly1305(key, nonce, aad).encrypt(plaintext),
    chachaOpen: (key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, ciphertext: Uint8Array) =>
      chacha20poly1305(key, nonce, aad).decrypt(ciphertext),
    ed25519PublicKey: (seed: Uint8Array) => getPublicKey(seedOf(seed)),
    x25519: (secretKey: Uint8Array, publicKey: Uint8Array) => assertNonZero(x25519.getSharedSecret(secretKey, publicKey)),
    x25519PublicKey: (secretKey: Uint8Array) => x25519.getPublicKey(secretKey),
    x25519Ephemeral(publicKey: Uint8Array) {
      const sk = x25519.utils.randomSecretKey();
      return { dh: assertNonZero(x25519.getSharedSecret(sk, publicKey)), ephemeralPublic: x25519.getPublicKey(sk) };
    },
    randomBytes: (n: number) => globalThis.crypto.getRandomValues(new Uint8Array(n)),
  };
  if (subtle === undefined) {
    return {
      ...base,
      signer: 'noble',
      ed25519Sign: async (seed, message) => signEd25519(message, seedOf(seed)),
      ed25519Verify: async (publicKey, message, signature) => verifyEd25519(signature, message, publicKey),
    };
  }
  const privateKeys = new KeyCache<Promise<CryptoKey>>(256);
  const publicKeys = new KeyCache<Promise<CryptoKey>>(4096);
  return {
    ...base,
    signer: 'webcrypto',
    async ed25519Sign(signKey, message) {
      const seed = seedOf(signKey);
      const key = await privateKeys.get(seed, () => subtle.importKey('pkcs8', concat(PKCS8_PREFIX, seed), 'Ed25519', false, ['sign']));
      return new Uint8Array(await subtle.sign('Ed25519', key, message as Uint8Array<ArrayBuffer>));
    },
    async ed25519Verify(publicKey, message, signature) {
      if (publicKey.length !== 32 || signature.length !== 64 || isWeakEd25519Key(publicKey)) return false;
      try {
        const key = await publicKeys.get(publicKey, () =>
          subtle.importKey('raw', publicKey.slice() as Uint8Array<ArrayBuffer>, 'Ed25519', false, ['verify']),
        );
        return await subtle.verify('Ed25519', key, signature as Uint8Array<ArrayBuffer>, message as Uint8Array<ArrayBuffer>);
      } catch {
        return false;
      }
    },
  };
}

/** WebCrypto's Ed25519 if this runtime has it (feature-detected by generating a key). */
async function ed25519Subtle(): Promise<SubtleCrypto | undefined> {
  const subtle = globalThis.crypto?.subtle;
  if (subtle === undefined) return undefined;
  try {
    await subtle.generateKey('Ed25519', false, ['sign', 'verify']);
    return subtle;
  } catch {
    return undefined;
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}
