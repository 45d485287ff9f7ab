import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import * as noble from '@noble/ed25519';
import { getPublicKey, signEd25519, verifyEd25519 } from '@parley/sdk';
import { describe, expect, it } from 'vitest';
import { isWeakPublicKeyBytes, publicKeyB64u, publicKeyFromB64u, signBytes, signingKeyFromSeed, verifyBytes } from '../src/keys/index.js';
import { HOSTILE_VALUES } from './support/hostile-values.js';
import hostile from './vectors/ed25519-hostile.json' with { type: 'json' };
import rfc from './vectors/rfc8032-ed25519.json' with { type: 'json' };

// docs/protocol.md: servers use node:crypto, browsers noble; both must agree byte for byte.
const bytes = (hex: string) => new Uint8Array(Buffer.from(hex, 'hex'));

/** The server side on raw key bytes: a KeyObject as a key document would give, then verifyBytes. */
function serverVerify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  let key: KeyObject;
  try {
    key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(publicKey).toString('base64url') }, format: 'jwk' });
  } catch {
    return false;
  }
  return verifyBytes(signature, message, key);
}

function flipBit(data: Uint8Array, bit: number): Uint8Array {
  const copy = Uint8Array.from(data);
  copy[bit >> 3]! ^= 1 << (bit & 7);
  return copy;
}

describe.each(rfc.vectors)('RFC 8032 §7.1 $name', (v) => {
  const secret = bytes(v.secret_key);
  const publicKey = bytes(v.public_key);
  const message = bytes(v.message);
  const signature = bytes(v.signature);
  const key = signingKeyFromSeed(secret, 'rfc8032');

  it('node:crypto derives the public key and signs exactly the vector signature', () => {
    expect(publicKeyB64u(key.publicKey)).toBe(Buffer.from(publicKey).toString('base64url'));
    expect(Buffer.from(signBytes(message, key.privateKey)).toString('hex')).toBe(v.signature);
    expect(serverVerify(publicKey, message, signature)).toBe(true);
  });

  it('noble derives the public key and signs exactly the vector signature', () => {
    expect(Buffer.from(getPublicKey(secret)).toString('hex')).toBe(v.public_key);
    expect(Buffer.from(signEd25519(message, secret)).toString('hex')).toBe(v.signature);
    expect(verifyEd25519(signature, message, publicKey)).toBe(true);
  });

  it('both refuse a flipped bit anywhere in the signature, and in the message and key', () => {
    // Every third bit and both ends: R's and S's bytes, the sign bit, S's top bits.
    for (let bit = 0; bit < 512; bit += bit === 510 ? 1 : 3) {
      const bad = flipBit(signature, bit);
      expect([serverVerify(publicKey, message, bad), verifyEd25519(bad, message, publicKey)], `signature bit ${bit}`).toEqual([
        false,
        false,
      ]);
    }
    for (const bit of [0, 7, 255]) {
      const badKey = flipBit(publicKey, bit);
      expect([serverVerify(badKey, message, signature), verifyEd25519(signature, message, badKey)], `key bit ${bit}`).toEqual([
        false,
        false,
      ]);
    }
    const longer = Uint8Array.of(...message, 0);
    expect([serverVerify(publicKey, longer, signature), verifyEd25519(signature, longer, publicKey)]).toEqual([false, false]);
    if (message.length > 0) {
      const bad = flipBit(message, 0);
      expect([serverVerify(publicKey, bad, signature), verifyEd25519(signature, bad, publicKey)]).toEqual([false, false]);
    }
  });
});

it('the TEST 1024 and SHA(abc) messages are the RFC text', () => {
  const long = rfc.vectors.find((v) => v.name === 'TEST 1024')!;
  expect(long.message.length / 2).toBe(1023);
  // A checksum of the vector file, so a typing slip in 2,046 hex digits shows.
  expect(createHash('sha256').update(bytes(long.message)).digest('hex')).toBe(long.message_sha256);
  const abc = rfc.vectors.find((v) => v.name === 'TEST SHA(abc)')!;
  expect(createHash('sha512').update('abc').digest('hex')).toBe(abc.message);
});

describe('hostile Ed25519 inputs: node:crypto and noble agree', () => {
  it.each(hostile.cases.map((c) => [c.name, c]))('%s', (_name, c) => {
    const args = [bytes(c.public_key), bytes(c.message), bytes(c.signature)] as const;
    expect({ server: serverVerify(...args), browser: verifyEd25519(args[2], args[1], args[0]) }).toEqual({
      server: c.valid,
      browser: c.valid,
    });
  });

  it('small-order keys are refused whatever the OpenSSL version', () => {
    // OpenSSL 3.0 (Node 20) accepts R = [r]B, S = r under the small-order keys [0], [4] and [6]T8;
    // OpenSSL 3.5 (Node 24) refuses them. Without the guard, servers on the two Node versions
    // would disagree about the same event; with it, every version refuses.
    const forgeries = hostile.cases.filter((c) => c.name.startsWith('small-order public key'));
    expect(forgeries).toHaveLength(8);
    for (const c of forgeries) {
      const key = createPublicKey({
        key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(c.public_key, 'hex').toString('base64url') },
        format: 'jwk',
      });
      expect(verifyBytes(bytes(c.signature), bytes(c.message), key), c.name).toBe(false);
    }
  });

  it('the cofactorless check is what refuses a torsion component in R (noble strict alone accepts it)', () => {
    for (const name of ['R with an order-8 component', 'mixed-order public key, k ≢ 0 mod 8']) {
      const c = hostile.cases.find((x) => x.name === name)!;
      expect(noble.verify(bytes(c.signature), bytes(c.message), bytes(c.public_key), { zip215: false }), name).toBe(true);
      expect(verifyEd25519(bytes(c.signature), bytes(c.message), bytes(c.public_key)), name).toBe(false);
    }
  });

  it('publicKeyFromB64u refuses the small-order and non-canonical keys outright', () => {
    const weak = hostile.cases.filter((c) => c.name.startsWith('small-order') || /^public key y = (p|p \+ 1|2\^255 - 1)$/.test(c.name));
    expect(weak.length).toBe(11);
    for (const c of weak) {
      expect(isWeakPublicKeyBytes(bytes(c.public_key)), c.name).toBe(true);
      expect(() => publicKeyFromB64u(Buffer.from(c.public_key, 'hex').toString('base64url')), c.name).toThrow(TypeError);
    }
  });
});

describe('API boundaries (one hostile table for every function)', () => {
  // TEST 2: its message is not empty, so empty bytes are a wrong message.
  const v = rfc.vectors[1]!;
  const good = { publicKey: bytes(v.public_key), message: bytes(v.message), signature: bytes(v.signature), secret: bytes(v.secret_key) };
  const serverKey = signingKeyFromSeed(good.secret, 'k');

  it.each(HOSTILE_VALUES)('verify returns false, never throws, for %s in any position', (_name, bad) => {
    const b = bad as Uint8Array;
    expect(verifyEd25519(b, good.message, good.publicKey)).toBe(false);
    expect(verifyEd25519(good.signature, good.message, b)).toBe(false);
    expect(verifyEd25519(good.signature, b, good.publicKey)).toBe(false);
    expect(verifyBytes(b, good.message, serverKey.publicKey)).toBe(false);
    expect(verifyBytes(good.signature, b, serverKey.publicKey)).toBe(false);
    expect(verifyBytes(good.signature, good.message, bad as KeyObject)).toBe(false);
  });

  it('verifyBytes refuses a private key where a public one is due', () => {
    expect(verifyBytes(good.signature, good.message, serverKey.privateKey)).toBe(false);
  });

  it.each(HOSTILE_VALUES.filter(([, x]) => !(x instanceof Uint8Array)))(
    'sign throws a TypeError naming the parameter for %s',
    (_name, bad) => {
      expect(() => signEd25519(bad as Uint8Array, good.secret)).toThrow(new TypeError('message: expected a Uint8Array'));
      expect(() => signEd25519(good.message, bad as Uint8Array)).toThrow(/^secretKey: /);
      expect(() => getPublicKey(bad as Uint8Array)).toThrow(/^secretKey: /);
      expect(() => signBytes(bad as Uint8Array, serverKey.privateKey)).toThrow(new TypeError('message: expected a Uint8Array'));
      expect(() => signBytes(good.message, bad as KeyObject)).toThrow(/^privateKey: /);
    },
  );

  it('sign refuses secret keys of the wrong length and public keys as private ones', () => {
    expect(() => signEd25519(good.message, new Uint8Array(31))).toThrow(new TypeError('secretKey: expected 32 bytes, got 31'));
    expect(() => signEd25519(good.message, new Uint8Array(64))).toThrow(TypeError);
    expect(() => signBytes(good.message, serverKey.publicKey)).toThrow(/^privateKey: /);
  });
});
