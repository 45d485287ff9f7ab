import { type CiphersuiteImpl, getCiphersuiteFromName, getCiphersuiteImpl } from 'ts-mls';
import { expand, nativeHpke } from './hpke.js';
import type { Primitives, SignerKind } from './primitives.js';
import { portablePrimitives } from './primitives-portable.js';

/** The one ciphersuite Parley speaks (docs/protocol.md). */
export const CIPHERSUITE = 'MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519' as const;
const HASH_LEN = 32;

export interface Suite {
  readonly impl: CiphersuiteImpl;
  readonly primitives: Primitives;
}

export interface SuiteOptions {
  /** Force an Ed25519 implementation; default: node in Node, else WebCrypto, else noble. */
  signer?: SignerKind;
  /** `reference`: ts-mls's own HPKE (@hpke/core), for differential tests. Default: native. */
  hpke?: 'native' | 'reference';
}

const cached = new Map<string, Promise<Suite>>();

/** ts-mls's ciphersuite 3 with its hash, HKDF, AEAD and signatures on the fastest primitives here. */
export function loadSuite(options: SuiteOptions = {}): Promise<Suite> {
  const key = `${options.signer ?? 'auto'}/${options.hpke ?? 'native'}`;
  let suite = cached.get(key);
  if (suite === undefined) {
    suite = buildSuite(options);
    cached.set(key, suite);
    suite.catch(() => cached.delete(key));
  }
  return suite;
}

async function buildSuite(options: SuiteOptions): Promise<Suite> {
  const primitives = await choosePrimitives(options.signer);
  const base = await getCiphersuiteImpl(getCiphersuiteFromName(CIPHERSUITE));
  const p = primitives;
  const impl: CiphersuiteImpl = {
    ...base,
    hash: {
      digest: async (data) => p.sha256(data),
      mac: async (key, data) => p.hmacSha256(key, data),
      verifyMac: async (key, mac, data) => constantTimeEqual(mac, p.hmacSha256(key, data)),
    },
    kdf: {
      size: HASH_LEN,
      // RFC 5869 §2.2: HMAC with an empty salt equals HMAC with HashLen zero bytes.
      extract: async (salt, ikm) => p.hmacSha256(salt, ikm),
      expand: async (prk, info, len) => expand(p, prk, info, len),
    },
    hpke: options.hpke === 'reference' ? base.hpke : nativeHpke(p),
    signature: {
      sign: (signKey, message) => p.ed25519Sign(signKey, message),
      verify: (publicKey, message, signature) => p.ed25519Verify(publicKey, message, signature),
      async keygen() {
        const signKey = p.randomBytes(32);
        return { signKey, publicKey: p.ed25519PublicKey(signKey) };
      },
    },
    rng: { randomBytes: (n) => p.randomBytes(n) },
  };
  return { impl, primitives };
}

async function choosePrimitives(signer: SignerKind | undefined): Promise<Primitives> {
  const inNode = typeof globalThis.process?.versions?.node === 'string';
  if (signer === 'node' || (signer === undefined && inNode)) {
    if (!inNode) throw new TypeError('signer: "node" needs node:crypto, which this runtime lacks');
    const { nodePrimitives } = await import('./primitives-node.js');
    return nodePrimitives();
  }
  const primitives = await portablePrimitives({ webcrypto: signer !== 'noble' });
  if (signer === 'webcrypto' && primitives.signer !== 'webcrypto') {
    throw new TypeError('signer: "webcrypto" asked for, but this runtime has no WebCrypto Ed25519');
  }
  return primitives;
}

export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= (a[i] as number) ^ (b[i] as number);
  return diff === 0;
}
