import { xchacha20poly1305 } from '@noble/ciphers/chacha.js';
import { x25519 } from '@noble/curves/ed25519.js';
import { hkdf } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { padMailboxBlock } from '@parley/schemas';
import { describe, expect, it } from 'vitest';
import {
  CONTACT_PLAINTEXT_BYTES,
  type ContactLink,
  ContactLinkError,
  contactLinkFromText,
  contactLinkUrl,
  decodeContactLink,
  encodeContactLink,
  newContactKeyPair,
  openContactRequest,
  sealContactRequest,
} from '../src/contact.js';
import { fromB64u, toB64u } from '../src/crypto/encoding.js';

// Contact links and sealed contact requests (docs/protocol.md), without a server.
const keys = newContactKeyPair();
const link: ContactLink = { server: 'https://mail.example.org', sendId: 'A'.repeat(32), publicKey: keys.publicKey };

describe('contact links', () => {
  it('round-trips through a URL whose fragment carries the payload', () => {
    const url = contactLinkUrl('https://chat.example.net/', link);
    expect(url).toMatch(/^https:\/\/chat\.example\.net\/contact#[A-Za-z0-9_-]+$/);
    expect(contactLinkFromText(url)).toEqual(link);
    expect(contactLinkFromText(`  #${encodeContactLink(link)} `)).toEqual(link);
    expect(decodeContactLink(encodeContactLink(link))).toEqual(link);
  });

  it('refuses damaged and hostile links with a ContactLinkError saying what is wrong', () => {
    const enc = (v: unknown) => toB64u(new TextEncoder().encode(JSON.stringify(v)));
    const cases: Array<[string, RegExp]> = [
      ['', /empty/],
      ['!!!', /damaged/],
      ['A'.repeat(2000), /too long/],
      [enc({ v: 2, s: link.server, q: link.sendId, k: link.publicKey }), /version 2/],
      [enc({ v: 1, s: 'javascript:alert(1)', q: link.sendId, k: link.publicKey }), /http\(s\)/],
      [enc({ v: 1, s: 'https://x.example/path?q=1', q: link.sendId, k: link.publicKey }), /bare origin/],
      [enc({ v: 1, s: link.server, q: 'short', k: link.publicKey }), /send ID/],
      [enc({ v: 1, s: link.server, q: link.sendId, k: 'nope' }), /key/],
      [enc(null), /damaged/],
    ];
    for (const [text, message] of cases) {
      expect(() => decodeContactLink(text), text.slice(0, 30)).toThrow(ContactLinkError);
      expect(() => decodeContactLink(text)).toThrow(message);
    }
  });
});

describe('sealed contact requests', () => {
  it('opens with the link key only, and every request has the same size whatever its note', () => {
    const short = sealContactRequest(link, { userId: '@bob:b.example', note: 'hi' });
    const long = sealContactRequest(link, { userId: '@bob:b.example', note: 'x'.repeat(300), displayName: 'Bob' });
    expect(short.length).toBe(long.length);
    expect(short.length).toBe(1 + 32 + 24 + CONTACT_PLAINTEXT_BYTES + 16);
    expect(short.length).toBeLessThanOrEqual(1020); // fits the smallest block a mailbox may publish
    expect(openContactRequest(keys.secretKey, long)).toMatchObject({ userId: '@bob:b.example', note: 'x'.repeat(300), displayName: 'Bob' });
    // Not a word of it in the clear.
    expect(Buffer.from(long).toString('latin1')).not.toContain('bob');
    // Another link's key cannot open it; a flipped bit or a cut is refused.
    expect(openContactRequest(newContactKeyPair().secretKey, short)).toBeNull();
    const flipped = new Uint8Array(short);
    flipped[100] = (flipped[100] as number) ^ 1;
    expect(openContactRequest(keys.secretKey, flipped)).toBeNull();
    expect(openContactRequest(keys.secretKey, short.subarray(0, short.length - 1))).toBeNull();
  });

  it('refuses to seal a bad user ID or an over-long note, and to open a request whose inner padding is bad', () => {
    expect(() => sealContactRequest(link, { userId: 'bob', note: '' })).toThrow(/user ID/);
    expect(() => sealContactRequest(link, { userId: '@bob:b.example', note: 'x'.repeat(301) })).toThrow(/at most 300/);
    expect(() => sealContactRequest(link, { userId: '@bob:b.example', note: '€'.repeat(290) })).toThrow(/too long/);
    // A sender who encrypts correctly but pads badly: refused after decryption.
    const good = openContactRequest(keys.secretKey, sealContactRequest(link, { userId: '@bob:b.example', note: 'ok' }));
    expect(good?.note).toBe('ok');
    const inner = padMailboxBlock(new TextEncoder().encode('{"user_id":"@bob:b.example","note":"x","ts":1}'), CONTACT_PLAINTEXT_BYTES);
    inner[CONTACT_PLAINTEXT_BYTES - 1] = 9;
    expect(
      openContactRequest(
        keys.secretKey,
        resealRaw(padMailboxBlock(new TextEncoder().encode('{"user_id":"@bob:b.example","note":"x","ts":1}'), CONTACT_PLAINTEXT_BYTES)),
      )?.userId,
    ).toBe('@bob:b.example');
    expect(openContactRequest(keys.secretKey, resealRaw(inner))).toBeNull();
  });
});

/** Seals raw plaintext the way sealContactRequest does, to test the receiver's padding check. */
function resealRaw(plaintext: Uint8Array): Uint8Array {
  const info = new TextEncoder().encode('parley-contact-request-v1');
  const recipient = fromB64u(keys.publicKey);
  const eph = x25519.utils.randomSecretKey();
  const ephPublic = x25519.getPublicKey(eph);
  const salt = new Uint8Array([...ephPublic, ...recipient]);
  const key = hkdf(sha256, x25519.getSharedSecret(eph, recipient), salt, info, 32);
  const nonce = new Uint8Array(24).fill(5);
  return new Uint8Array([1, ...ephPublic, ...nonce, ...xchacha20poly1305(key, nonce, info).encrypt(plaintext)]);
}
