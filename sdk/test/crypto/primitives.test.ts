import { createHash, createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { AttachmentError, decryptAttachment, encryptAttachment, loadSuite, safetyEmoji, safetyNumber } from '../../src/crypto/index.js';
import { nodePrimitives } from '../../src/crypto/primitives-node.js';
import { portablePrimitives } from '../../src/crypto/primitives-portable.js';
import { claim, introduce, makeUser, TestHost, text, untext } from './support.js';

const utf8 = (s: string) => new TextEncoder().encode(s);

describe('suite primitives', () => {
  it('native HPKE and ts-mls’s reference HPKE (@hpke/core) open each other’s ciphertexts and agree on keys and exports', async () => {
    const ours = (await loadSuite()).impl.hpke;
    const ref = (await loadSuite({ hpke: 'reference' })).impl.hpke;
    const ikm = utf8('derive me a key pair, please, 32+ bytes');
    const a = await ours.deriveKeyPair(ikm);
    const b = await ref.deriveKeyPair(ikm);
    expect(await ours.exportPublicKey(a.publicKey)).toEqual(await ref.exportPublicKey(b.publicKey));
    expect(await ours.exportPrivateKey(a.privateKey)).toEqual(await ref.exportPrivateKey(b.privateKey));
    const [info, aad, pt] = [utf8('info'), utf8('aad'), utf8('plaintext')];
    const s1 = await ours.seal(a.publicKey, pt, info, aad);
    expect(await ref.open(b.privateKey, s1.enc, s1.ct, info, aad)).toEqual(pt);
    const s2 = await ref.seal(b.publicKey, pt, info, aad);
    expect(await ours.open(a.privateKey, s2.enc, s2.ct, info, aad)).toEqual(pt);
    const e = await ours.exportSecret(a.publicKey, info, 32, aad);
    expect(await ref.importSecret(b.privateKey, info, e.enc, 32, aad)).toEqual(e.secret);
    const tampered = s1.ct.slice();
    tampered[0]! ^= 1;
    await expect(ours.open(a.privateKey, s1.enc, tampered, info, aad)).rejects.toThrow();
  });

  it('SHA-256 and HMAC-SHA-256 of the node and portable primitives equal node:crypto’s for keys shorter than, equal to and longer than a block', async () => {
    const node = nodePrimitives();
    const portable = await portablePrimitives({ webcrypto: false });
    // RFC 4231 test case 1.
    const tc1 = node.hmacSha256(new Uint8Array(20).fill(0x0b), utf8('Hi There'));
    expect(Buffer.from(tc1).toString('hex')).toBe('b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7');
    for (const keyLength of [0, 20, 32, 63, 64, 65, 131]) {
      for (const dataLength of [0, 1, 55, 64, 400]) {
        const key = new Uint8Array(keyLength).map((_, i) => (i * 7 + keyLength) & 255);
        const data = new Uint8Array(dataLength).map((_, i) => (i * 13 + dataLength) & 255);
        const want = new Uint8Array(createHmac('sha256', key).update(data).digest());
        expect(node.hmacSha256(key, data)).toEqual(want);
        expect(portable.hmacSha256(key, data)).toEqual(want);
        expect(node.sha256(data)).toEqual(new Uint8Array(createHash('sha256').update(data).digest()));
      }
    }
  });

  it('native HPKE seals under alternating infos that the reference opens (the info hash it keeps follows the info)', async () => {
    const ours = (await loadSuite()).impl.hpke;
    const ref = (await loadSuite({ hpke: 'reference' })).impl.hpke;
    const pair = await ref.generateKeyPair();
    const pub = await ours.importPublicKey(await ref.exportPublicKey(pair.publicKey));
    const infos = [utf8('group context 1'), utf8('group context 2'), utf8('group context 1'), new Uint8Array(0)];
    for (const info of infos) {
      const sealed = await ours.seal(pub, utf8('path secret'), info, undefined);
      expect(await ref.open(pair.privateKey, sealed.enc, sealed.ct, info, undefined)).toEqual(utf8('path secret'));
      await expect(ref.open(pair.privateKey, sealed.enc, sealed.ct, utf8('another info'), undefined)).rejects.toThrow();
    }
  });

  it('devices on node:crypto, WebCrypto and noble signers talk to each other', async () => {
    const alice = await makeUser('@alice:a.test', 1, { signer: 'node' });
    const bob = await makeUser('@bob:b.test', 1, { signer: 'noble' });
    const carol = await makeUser('@carol:c.test', 1, { signer: 'webcrypto' });
    await introduce([alice, bob, carol]);
    const [a, b, c] = [alice.devices[0]!, bob.devices[0]!, carol.devices[0]!];
    expect([a.signer, b.signer, c.signer]).toEqual(['node', 'noble', 'webcrypto']);
    const host = new TestHost();
    await a.createGroup('!mix:a.test');
    const add = await a.prepareCommit('!mix:a.test', { add: [await claim(b), await claim(c)] });
    expect(host.submit(add.content).ok).toBe(true);
    await a.confirmCommit('!mix:a.test');
    for (const d of [b, c]) expect((await d.joinFromWelcome('!mix:a.test', add.welcome!)).ok).toBe(true);
    for (const sender of [a, b, c]) {
      const sent = await sender.encrypt('!mix:a.test', text(sender.signer));
      for (const r of [a, b, c].filter((x) => x !== sender)) {
        const got = await r.decrypt('!mix:a.test', sent);
        expect(got.ok && untext(got.plaintext)).toBe(sender.signer);
      }
    }
  });
});

describe('attachments', () => {
  it('round-trips, and refuses a changed byte, a wrong key or a wrong size', () => {
    const image = new Uint8Array(100_000).map((_, i) => i % 251);
    const { ciphertext, info } = encryptAttachment(image);
    expect(ciphertext.length).toBe(image.length + 16);
    expect(decryptAttachment(ciphertext, info)).toEqual(image);
    const changed = ciphertext.slice();
    changed[500]! ^= 1;
    expect(() => decryptAttachment(changed, info)).toThrow(AttachmentError);
    const other = encryptAttachment(image).info;
    expect(() => decryptAttachment(ciphertext, { ...other, sha256: info.sha256 })).toThrow(/does not decrypt/);
    expect(() => decryptAttachment(ciphertext, { ...info, size: 5 })).toThrow(/size/);
  });
});

describe('safety number and emoji', () => {
  const alice = { userId: '@alice:a.test', userSigningKey: new Uint8Array(32).fill(1) };
  const bob = { userId: '@bob:b.test', userSigningKey: new Uint8Array(32).fill(2) };
  it('are the same whoever computes them, and change when a key changes', () => {
    expect(safetyNumber(alice, bob)).toBe(safetyNumber(bob, alice));
    expect(safetyNumber(alice, bob)).toMatch(/^(\d{5} ){11}\d{5}$/);
    expect(safetyEmoji(alice, bob)).toEqual(safetyEmoji(bob, alice));
    expect(safetyEmoji(alice, bob)).toHaveLength(7);
    const bob2 = { ...bob, userSigningKey: new Uint8Array(32).fill(3) };
    expect(safetyNumber(alice, bob2)).not.toBe(safetyNumber(alice, bob));
    expect(safetyEmoji(alice, bob2)).not.toEqual(safetyEmoji(alice, bob));
    expect(() => safetyNumber(alice, { ...bob, userSigningKey: new Uint8Array(31) })).toThrow(/32 bytes/);
  });
});

describe('key packages', () => {
  it('refill only below the low-water mark, always keep a last-resort package, and a one-time one is used once', async () => {
    const alice = await makeUser('@alice:a.test', 1);
    const bob = await makeUser('@bob:b.test', 1);
    await introduce([alice, bob]);
    const b = bob.devices[0]!;
    expect(await b.keyPackages.refill({ one_time_remaining: 50, has_last_resort: true })).toBeNull();
    const upload = await b.keyPackages.refill({ one_time_remaining: 5, has_last_resort: false });
    expect(upload?.key_packages).toHaveLength(95);
    expect(upload?.last_resort).toBeDefined();
    const a = alice.devices[0]!;
    await a.createGroup('!kp:a.test');
    // The last-resort package may be used more than once; a one-time package only once.
    const add = await a.prepareCommit('!kp:a.test', { add: [upload!.key_packages![0]!] });
    await a.confirmCommit('!kp:a.test');
    expect((await b.joinFromWelcome('!kp:a.test', add.welcome!)).ok).toBe(true);
    expect(await b.keyPackages.count()).toBe(95); // 94 one-time + the last resort
  });
});

describe('Ed25519 across signers', () => {
  it('every signer refuses a small-order public key that OpenSSL alone would accept for any message', async () => {
    const identity = new Uint8Array(32);
    identity[0] = 1; // the identity point (y = 1)
    const signature = new Uint8Array(64);
    signature.set(identity); // R = identity, S = 0: [0]B = R + [k]A holds for every message
    for (const signer of ['node', 'webcrypto', 'noble'] as const) {
      const { primitives } = await loadSuite({ signer });
      expect(await primitives.ed25519Verify(identity, utf8('any message'), signature), signer).toBe(false);
    }
  });

  it('a node signature verifies on every signer', async () => {
    const { primitives: node } = await loadSuite({ signer: 'node' });
    const seed = node.randomBytes(32);
    const sig = await node.ed25519Sign(seed, utf8('hello'));
    for (const signer of ['node', 'webcrypto', 'noble'] as const) {
      const { primitives } = await loadSuite({ signer });
      expect(await primitives.ed25519Verify(node.ed25519PublicKey(seed), utf8('hello'), sig), signer).toBe(true);
      expect(await primitives.ed25519Verify(node.ed25519PublicKey(seed), utf8('hellO'), sig), signer).toBe(false);
    }
  });
});
