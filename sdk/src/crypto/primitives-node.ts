import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  createPrivateKey,
  createPublicKey,
  type KeyObject,
  randomBytes,
  sign,
  verify,
} from 'node:crypto';
import { KeyCache, type Primitives, seedOf } from './primitives.js';

// DER prefixes of PKCS#8 and SPKI for Ed25519 (RFC 8410 §7, §4), followed by the 32 raw bytes.
const PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

/** node:crypto (OpenSSL): the same Ed25519 the homeserver verifies with (DESIGN §3). */
export function nodePrimitives(): Primitives {
  const privateKeys = new KeyCache<KeyObject>(256);
  const publicKeys = new KeyCache<KeyObject>(4096);
  const privateKey = (seed: Uint8Array) =>
    privateKeys.get(seed, () => createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, seed]), format: 'der', type: 'pkcs8' }));
  return {
    signer: 'node',
    sha256: (data) => new Uint8Array(createHash('sha256').update(data).digest()),
    hmacSha256: (key, data) => new Uint8Array(createHmac('sha256', key).update(data).digest()),
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
      if (publicKey.length !== 32 || signature.length !== 64) return false;
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
