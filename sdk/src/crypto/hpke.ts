import type { Hpke, PrivateKey, PublicKey } from 'ts-mls';
import { concatBytes, equalBytes, utf8 } from './encoding.js';
import type { Primitives } from './primitives.js';

/**
 * HPKE (RFC 9180) base mode for ciphersuite 3 only: DHKEM(X25519, HKDF-SHA256) 0x0020,
 * HKDF-SHA256 0x0001, ChaCha20Poly1305 0x0003, on the native primitives. @hpke/core does
 * the same through WebCrypto with a key import per operation; a commit in a 500-member
 * group makes hundreds of these, which is where its time went.
 *
 * Keys are the raw 32 bytes, boxed in the CryptoKey-shaped objects ts-mls passes around
 * opaquely.
 */
const KEM_SUITE = utf8('KEM\u0000\u0020');
const HPKE_SUITE = Uint8Array.of(0x48, 0x50, 0x4b, 0x45, 0x00, 0x20, 0x00, 0x01, 0x00, 0x03); // "HPKE" || kem || kdf || aead
const V1 = utf8('HPKE-v1');
const NK = 32;
const NN = 12;
const NH = 32;
const EMPTY = new Uint8Array(0);

interface RawKey {
  readonly type: 'private' | 'public';
  readonly raw: Uint8Array;
}

function box<T extends PublicKey | PrivateKey>(type: 'private' | 'public', raw: Uint8Array): T {
  return { type, raw } as RawKey as unknown as T;
}

function rawOf(key: PublicKey | PrivateKey, type: 'private' | 'public'): Uint8Array {
  const k = key as unknown as RawKey;
  if (k?.type !== type || !(k.raw instanceof Uint8Array) || k.raw.length !== 32)
    throw new TypeError(`HPKE: expected an X25519 ${type} key`);
  return k.raw;
}

export function nativeHpke(p: Primitives): Hpke {
  // RFC 9180 §4: LabeledExtract / LabeledExpand.
  const labeledExtract = (suite: Uint8Array, salt: Uint8Array, label: string, ikm: Uint8Array) =>
    p.hmacSha256(salt, concatBytes(V1, suite, utf8(label), ikm));
  const labeledExpand = (suite: Uint8Array, prk: Uint8Array, label: string, info: Uint8Array, length: number) => {
    const labeled = concatBytes(Uint8Array.of(length >> 8, length & 255), V1, suite, utf8(label), info);
    return expand(p, prk, labeled, length);
  };

  // RFC 9180 §4.1: DHKEM.
  const extractAndExpand = (dh: Uint8Array, kemContext: Uint8Array) =>
    labeledExpand(KEM_SUITE, labeledExtract(KEM_SUITE, EMPTY, 'eae_prk', dh), 'shared_secret', kemContext, 32);
  const encap = (pkR: Uint8Array) => {
    const { dh, ephemeralPublic: enc } = p.x25519Ephemeral(pkR);
    return { shared: extractAndExpand(dh, concatBytes(enc, pkR)), enc };
  };
  const decap = (enc: Uint8Array, skR: Uint8Array) => {
    if (enc.length !== 32) throw new Error('HPKE: enc must be 32 bytes');
    return extractAndExpand(p.x25519(skR, enc), concatBytes(enc, p.x25519PublicKey(skR)));
  };

  // RFC 9180 §5.1: KeySchedule, mode_base, empty PSK. psk_id_hash is a constant, and a commit
  // seals its path secrets to hundreds of leaves under one info (the same group context), so
  // the last info's hash is kept: five HMACs a seal instead of eight.
  const pskIdHash = labeledExtract(HPKE_SUITE, EMPTY, 'psk_id_hash', EMPTY);
  let lastInfo: Uint8Array | undefined;
  let lastInfoHash: Uint8Array = EMPTY;
  const infoHashOf = (info: Uint8Array) => {
    if (lastInfo === undefined || !equalBytes(lastInfo, info)) {
      lastInfoHash = labeledExtract(HPKE_SUITE, EMPTY, 'info_hash', info);
      lastInfo = info.slice();
    }
    return lastInfoHash;
  };
  const keySchedule = (shared: Uint8Array, info: Uint8Array) => {
    const context = concatBytes(Uint8Array.of(0), pskIdHash, infoHashOf(info));
    const secret = labeledExtract(HPKE_SUITE, shared, 'secret', EMPTY);
    return {
      key: labeledExpand(HPKE_SUITE, secret, 'key', context, NK),
      nonce: labeledExpand(HPKE_SUITE, secret, 'base_nonce', context, NN),
      // Only exportSecret/importSecret use the exporter secret.
      exporter: () => labeledExpand(HPKE_SUITE, secret, 'exp', context, NH),
    };
  };

  return {
    keyLength: NK,
    nonceLength: NN,
    async seal(publicKey, plaintext, info, aad) {
      const { shared, enc } = encap(rawOf(publicKey, 'public'));
      const ks = keySchedule(shared, info);
      // Single-shot: sequence number 0, so the nonce is base_nonce (RFC 9180 §5.2).
      return { ct: p.chachaSeal(ks.key, ks.nonce, aad ?? EMPTY, plaintext), enc };
    },
    async open(privateKey, kemOutput, ciphertext, info, aad) {
      const ks = keySchedule(decap(kemOutput, rawOf(privateKey, 'private')), info);
      return p.chachaOpen(ks.key, ks.nonce, aad ?? EMPTY, ciphertext);
    },
    async exportSecret(publicKey, exporterContext, length, info) {
      const { shared, enc } = encap(rawOf(publicKey, 'public'));
      const ks = keySchedule(shared, info);
      return { enc, secret: labeledExpand(HPKE_SUITE, ks.exporter(), 'sec', exporterContext, length) };
    },
    async importSecret(privateKey, exporterContext, kemOutput, length, info) {
      const ks = keySchedule(decap(kemOutput, rawOf(privateKey, 'private')), info);
      return labeledExpand(HPKE_SUITE, ks.exporter(), 'sec', exporterContext, length);
    },
    async importPrivateKey(k) {
      if (k.length !== 32) throw new Error('HPKE: X25519 private key must be 32 bytes');
      return box<PrivateKey>('private', k.slice());
    },
    async importPublicKey(k) {
      if (k.length !== 32) throw new Error('HPKE: X25519 public key must be 32 bytes');
      return box<PublicKey>('public', k.slice());
    },
    async exportPublicKey(k) {
      return rawOf(k, 'public').slice();
    },
    async exportPrivateKey(k) {
      return rawOf(k, 'private').slice();
    },
    async encryptAead(key, nonce, aad, plaintext) {
      return p.chachaSeal(key, nonce, aad ?? EMPTY, plaintext);
    },
    async decryptAead(key, nonce, aad, ciphertext) {
      return p.chachaOpen(key, nonce, aad ?? EMPTY, ciphertext);
    },
    async deriveKeyPair(ikm) {
      // RFC 9180 §7.1.3 for X25519: sk = LabeledExpand(dkp_prk, "sk", "", Nsk).
      const sk = labeledExpand(KEM_SUITE, labeledExtract(KEM_SUITE, EMPTY, 'dkp_prk', ikm), 'sk', EMPTY, 32);
      return { privateKey: box<PrivateKey>('private', sk), publicKey: box<PublicKey>('public', p.x25519PublicKey(sk)) };
    },
    async generateKeyPair() {
      const sk = p.randomBytes(32);
      return { privateKey: box<PrivateKey>('private', sk), publicKey: box<PublicKey>('public', p.x25519PublicKey(sk)) };
    },
  };
}

// RFC 5869 §2.3.
export function expand(p: Primitives, prk: Uint8Array, info: Uint8Array, length: number): Uint8Array {
  if (!Number.isInteger(length) || length < 0 || length > 255 * 32) throw new RangeError(`length: ${length} out of range for HKDF-SHA-256`);
  const out = new Uint8Array(length);
  let t: Uint8Array = EMPTY;
  for (let i = 1, offset = 0; offset < length; i++) {
    t = p.hmacSha256(prk, concatBytes(t, info, Uint8Array.of(i)));
    out.set(t.subarray(0, Math.min(32, length - offset)), offset);
    offset += 32;
  }
  return out;
}
