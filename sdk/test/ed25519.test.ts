import { describe, expect, it } from 'vitest';
import { getPublicKey, signEd25519, verifyEd25519 } from '../src/index.js';

// The RFC 8032 vectors and the hostile table shared with the server live in
// federation/test/ed25519.test.ts; this covers the sdk's own surface.
describe('sdk Ed25519', () => {
  const secret = new Uint8Array(32).map((_, i) => i);
  const message = new TextEncoder().encode('parley');

  it('signs deterministically and verifies its own signatures', () => {
    const signature = signEd25519(message, secret);
    expect(signature).toHaveLength(64);
    expect(signEd25519(message, secret)).toEqual(signature);
    expect(verifyEd25519(signature, message, getPublicKey(secret))).toBe(true);
    expect(verifyEd25519(signature, new TextEncoder().encode('parlay'), getPublicKey(secret))).toBe(false);
  });

  it('RFC 8032 §7.1 TEST 1', () => {
    const hex = (h: string) => Uint8Array.from(h.match(/../g) ?? [], (b) => Number.parseInt(b, 16));
    const sk = hex('9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60');
    const pk = hex('d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a');
    const sig = hex(
      'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b',
    );
    expect(getPublicKey(sk)).toEqual(pk);
    expect(signEd25519(new Uint8Array(0), sk)).toEqual(sig);
    expect(verifyEd25519(sig, new Uint8Array(0), pk)).toBe(true);
  });

  it('throws a TypeError naming the parameter when signing with bad arguments', () => {
    expect(() => signEd25519('text' as never, secret)).toThrow(new TypeError('message: expected a Uint8Array'));
    expect(() => signEd25519(message, secret.subarray(1))).toThrow(new TypeError('secretKey: expected 32 bytes, got 31'));
    expect(() => getPublicKey(null as never)).toThrow(new TypeError('secretKey: expected a Uint8Array'));
  });

  it('returns false for malformed verification input', () => {
    const signature = signEd25519(message, secret);
    expect(verifyEd25519(signature.subarray(1), message, getPublicKey(secret))).toBe(false);
    expect(verifyEd25519(signature, message, new Uint8Array(32))).toBe(false);
    expect(verifyEd25519(null as never, message, getPublicKey(secret))).toBe(false);
  });
});
