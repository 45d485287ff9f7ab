import { createPublicKey } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  generateSigningKey,
  keyRingOf,
  loadOrCreateSigningKey,
  publicKeyB64u,
  publicKeyFromB64u,
  signBytes,
  signingKeyFromSeed,
  verifyBytes,
} from '../src/keys/index.js';
import { HOSTILE_VALUES } from './support/hostile-values.js';

describe('generateSigningKey', () => {
  it('makes Ed25519 keys with IDs that fit the signature key pattern', () => {
    const ids = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const key = generateSigningKey();
      expect(key.keyId).toMatch(/^a_[A-Za-z0-9]{8}$/);
      ids.add(key.keyId);
      expect(key.privateKey.asymmetricKeyType).toBe('ed25519');
      expect(key.publicKey.type).toBe('public');
    }
    expect(ids.size).toBe(200);
  });

  it('signs and verifies with its own pair', () => {
    const key = generateSigningKey();
    const msg = new TextEncoder().encode('hello');
    expect(verifyBytes(signBytes(msg, key.privateKey), msg, key.publicKey)).toBe(true);
    expect(verifyBytes(signBytes(msg, key.privateKey), msg, generateSigningKey().publicKey)).toBe(false);
  });
});

describe('public key encoding', () => {
  it('round-trips the raw 32 bytes as unpadded base64url', () => {
    const key = generateSigningKey();
    const text = publicKeyB64u(key.publicKey);
    expect(text).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(publicKeyB64u(key.privateKey)).toBe(text);
    const back = publicKeyFromB64u(text);
    expect(back.equals(key.publicKey)).toBe(true);
  });

  it.each([
    ['padded', 'A6EHv_POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg='],
    ['standard base64 alphabet', 'A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg'],
    ['42 characters', 'A6EHv_POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMb'],
    ['44 characters', 'A6EHv_POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbgA'],
    // Same 32 bytes, but the unused low bits of the last character are set: a second spelling.
    ['non-canonical last character', 'A6EHv_POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbh'],
    ['the identity point', Buffer.from([1, ...new Uint8Array(31)]).toString('base64url')],
  ])('publicKeyFromB64u refuses %s', (_name, text) => {
    expect(() => publicKeyFromB64u(text)).toThrow(TypeError);
  });

  it.each(HOSTILE_VALUES)('publicKeyFromB64u and publicKeyB64u throw a TypeError for %s', (_name, bad) => {
    expect(() => publicKeyFromB64u(bad as string)).toThrow(/^publicKey: /);
    expect(() => publicKeyB64u(bad as never)).toThrow(new TypeError('key: expected an Ed25519 KeyObject'));
  });

  it('refuses keys of other algorithms', () => {
    const x25519 = createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: 'A6EHv_POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg' }, format: 'jwk' });
    expect(() => publicKeyB64u(x25519)).toThrow(TypeError);
    expect(verifyBytes(new Uint8Array(64), new Uint8Array(0), x25519)).toBe(false);
  });

  it('signingKeyFromSeed checks its arguments', () => {
    expect(() => signingKeyFromSeed(new Uint8Array(31), 'k')).toThrow(new TypeError('seed: expected 32 bytes'));
    expect(() => signingKeyFromSeed(new Uint8Array(32), 'bad-id')).toThrow(/^keyId: /);
  });
});

describe('keyRingOf', () => {
  it('finds own entries only', () => {
    const key = generateSigningKey();
    const ring = keyRingOf({ 'a.test': { [key.keyId]: key.publicKey } });
    expect(ring('a.test', key.keyId)).toBe(key.publicKey);
    expect(ring('a.test', 'other')).toBeUndefined();
    expect(ring('b.test', key.keyId)).toBeUndefined();
    expect(ring('constructor', 'name')).toBeUndefined();
    expect(ring('a.test', 'toString')).toBeUndefined();
  });
});

describe('loadOrCreateSigningKey', () => {
  let root: string;
  beforeEach(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'parley-keys-'));
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('creates a 0600 PKCS#8 PEM key in a 0700 directory and loads the same key again', async () => {
    const dir = path.join(root, 'keys');
    const created = await loadOrCreateSigningKey(dir);
    const file = path.join(dir, `ed25519_${created.keyId}.key`);
    expect((await stat(dir)).mode & 0o777).toBe(0o700);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect(await readFile(file, 'utf8')).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    expect(await readdir(dir)).toEqual([`ed25519_${created.keyId}.key`]);

    const again = await loadOrCreateSigningKey(dir);
    expect(again.keyId).toBe(created.keyId);
    expect(publicKeyB64u(again.publicKey)).toBe(publicKeyB64u(created.publicKey));
  });

  it('loads the newest of several keys and ignores other files', async () => {
    const old = await loadOrCreateSigningKey(root);
    const newer = generateSigningKey();
    const pem = newer.privateKey.export({ type: 'pkcs8', format: 'pem' });
    await writeFile(path.join(root, `ed25519_${newer.keyId}.key`), pem, { mode: 0o600 });
    await writeFile(path.join(root, 'ed25519_notes.txt'), 'not a key');
    await utimes(path.join(root, `ed25519_${old.keyId}.key`), new Date(1_000_000), new Date(1_000_000));
    const loaded = await loadOrCreateSigningKey(root);
    expect(loaded.keyId).toBe(newer.keyId);
    expect(loaded.publicKey.equals(newer.publicKey)).toBe(true);
  });

  it('refuses to start on a damaged key file rather than minting a new identity', async () => {
    await writeFile(path.join(root, 'ed25519_a_broken.key'), 'garbage', { mode: 0o600 });
    await expect(loadOrCreateSigningKey(root)).rejects.toThrow(/cannot read signing key .*ed25519_a_broken\.key/);
  });

  it('refuses a key file holding another algorithm', async () => {
    const { generateKeyPairSync } = await import('node:crypto');
    const pem = generateKeyPairSync('x25519').privateKey.export({ type: 'pkcs8', format: 'pem' });
    await writeFile(path.join(root, 'ed25519_a_x25519.key'), pem, { mode: 0o600 });
    await expect(loadOrCreateSigningKey(root)).rejects.toThrow(/is not an Ed25519 key/);
  });

  it('settles on one key when several processes start together', async () => {
    const keys = await Promise.all([1, 2, 3].map(() => loadOrCreateSigningKey(path.join(root, 'shared'))));
    const files = await readdir(path.join(root, 'shared'));
    expect(files.every((f) => /^ed25519_a_[A-Za-z0-9]{8}\.key$/.test(f))).toBe(true);
    // Every caller got a key that is on disk.
    for (const key of keys) expect(files).toContain(`ed25519_${key.keyId}.key`);
  });

  it('throws a TypeError for a bad dir', async () => {
    await expect(loadOrCreateSigningKey('' as string)).rejects.toThrow(new TypeError('dir: expected a directory path'));
    await expect(loadOrCreateSigningKey(42 as unknown as string)).rejects.toThrow(TypeError);
  });
});
