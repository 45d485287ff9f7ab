import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  hash,
  type KeyObject,
  randomBytes,
  sign,
  verify,
} from 'node:crypto';
import { assertNonZero, isWeakEd25519Key, KeyCache, type Primitives, seedOf } from './primitives.js';

// DER prefixes of PKCS#8 and SPKI for Ed25519 (RFC 8410 §7, §4), followed by the 32 raw bytes.
const PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
const ZERO_X = 'A'.repeat(43);

/** node:crypto (OpenSSL): the same Ed25519 the homeserver verifies with (docs/protocol.md). */
export function nodePrimitives(): Primitives {
  const privateKeys = new KeyCache<KeyObject>(256);
  const publicKeys = new KeyCache<KeyObject>(4096);
  const weak = new KeyCache<boolean>(4096);
  const privateKey = (seed: Uint8Array) =>
    privateKeys.get(seed, () => createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, seed]), format: 'der', type: 'pkcs8' }));
  const xPrivate = new KeyCache<KeyObject>(1024);
  const xPublic = new KeyCache<KeyObject>(4096);
  // Node's JWK import wants `x` but builds the key from `d` alone (the public half is derived
  // again from it, which x25519PublicKey relies on); a zero `x` avoids computing it twice.
  const xPrivateKey = (sk: Uint8Array) =>
    xPrivate.get(sk, () =>
      createPrivateKey({ key: { kty: 'OKP', crv: 'X25519', d: Buffer.from(sk).toString('base64url'), x: ZERO_X }, format: 'jwk' }),
    );
  // OpenSSL 3 parses DER keys slowly (≈ 0.4 ms each); X25519 keys go through JWK instead,
  // which Node hands to OpenSSL as raw bytes.
  const xPublicKey = (publicKey: Uint8Array) =>
    xPublic.get(publicKey, () =>
      createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: Buffer.from(publicKey).toString('base64url') }, format: 'jwk' }),
    );
  return {
    signer: 'node',
    x25519(secretKey, publicKey) {
      if (secretKey.length !== 32 || publicKey.length !== 32) throw new TypeError('X25519: keys must be 32 bytes');
      return assertNonZero(new Uint8Array(diffieHellman({ privateKey: xPrivateKey(secretKey), publicKey: xPublicKey(publicKey) })));
    },
    x25519Ephemeral(publicKey) {
      if (publicKey.length !== 32) throw new TypeError('X25519: public key must be 32 bytes');
      const eph = generateKeyPairSync('x25519');
      const dh = assertNonZero(new Uint8Array(diffieHellman({ privateKey: eph.privateKey, publicKey: xPublicKey(publicKey) })));
      return { dh, ephemeralPublic: rawPublic(eph.publicKey) };
    },
    x25519PublicKey(secretKey) {
      if (secretKey.length !== 32) throw new TypeError('X25519: secret key must be 32 bytes');
      return rawPublic(createPublicKey(xPrivateKey(secretKey)));
    },
    sha256,
    hmacSha256,
    chachaSeal(key, nonce, aad, plaintext) {
      const c = createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: 16 });
      c.setAAD(aad, { plaintextLength: plaintext.length });
      const body = c.update(plaintext);
      c.final();
      return new Uint8Array(Buffer.concat([body, c.getAuthTag()]));
    },
    chachaOpen(key, nonce, aad, ciphertext) {
      if (ciphertext.length < 16) throw new Error('ciphertext shorter than its tag');
      const d = createDecipheriv('chacha20-poly1305', key, nonce, { authTagLength: 16 });
      d.setAAD(aad, { plaintextLength: ciphertext.length - 16 });
      d.setAuthTag(ciphertext.subarray(ciphertext.length - 16));
      const body = d.update(ciphertext.subarray(0, ciphertext.length - 16));
      d.final(); // throws "Unsupported state or unable to authenticate data" on a bad tag
      return new Uint8Array(body);
    },
    async ed25519Sign(signKey, message) {
      return new Uint8Array(sign(null, message, privateKey(seedOf(signKey))));
    },
    async ed25519Verify(publicKey, message, signature) {
      if (publicKey.length !== 32 || signature.length !== 64 || weak.get(publicKey, () => isWeakEd25519Key(publicKey))) return false;
      try {
        const key = publicKeys.get(publicKey, () =>
          createPublicKey({ key: Buffer.concat([SPKI_PREFIX, publicKey]), format: 'der', type: 'spki' }),
        );
        return verify(null, message, key, signature);
      } catch {
        return false;
      }
    },
    ed25519PublicKey(seed) {
      const spki = createPublicKey(privateKey(seedOf(seed))).export({ format: 'der', type: 'spki' });
      return new Uint8Array(spki.subarray(SPKI_PREFIX.length));
    },
    randomBytes: (n) => new Uint8Array(randomBytes(n)),
  };
}

// Node's one-shot `hash` (20.12+) skips the Hash object createHash builds: ≈ 2 µs instead of
// 2–15 µs for the short inputs of tree hashing. HMAC (RFC 2104) is built on it for the same
// reason: createHmac costs ≈ 10 µs a call, and HKDF/HPKE make thousands per large commit.
const oneShot = typeof hash === 'function';
const sha256 = (data: Uint8Array): Uint8Array =>
  new Uint8Array(oneShot ? hash('sha256', data, 'buffer') : createHash('sha256').update(data).digest());

const BLOCK = 64;
function hmacSha256(key: Uint8Array, data: Uint8Array): Uint8Array {
  if (!oneShot) return new Uint8Array(createHmac('sha256', key).update(data).digest());
  const k = key.length > BLOCK ? sha256(key) : key;
  const inner = new Uint8Array(BLOCK + data.length);
  const outer = new Uint8Array(BLOCK + 32);
  for (let i = 0; i < BLOCK; i++) {
    const b = i < k.length ? (k[i] as number) : 0;
    inner[i] = b ^ 0x36;
    outer[i] = b ^ 0x5c;
  }
  inner.set(data, BLOCK);
  outer.set(hash('sha256', inner, 'buffer') as Buffer, BLOCK);
  return new Uint8Array(hash('sha256', outer, 'buffer') as Buffer);
}

function rawPublic(key: KeyObject): Uint8Array {
  const x = key.export({ format: 'jwk' }).x;
  if (typeof x !== 'string') throw new Error('X25519: could not export a public key');
  return new Uint8Array(Buffer.from(x, 'base64url'));
}
