import { xchacha20poly1305 } from '@noble/ciphers/chacha.js';
import { hkdf } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { concatBytes, utf8 } from './encoding.js';

/**
 * Key backup encryption (docs/protocol.md): a 32-byte recovery key the user writes down; the
 * payload (user signing key, group states) is sealed with XChaCha20-Poly1305 under a key
 * HKDF-SHA-256 derives from it, so the homeserver stores only ciphertext.
 *
 * Format v1: `0x01 || salt(16) || nonce(24) || ciphertext+tag`. The AAD binds the format
 * name, version and user ID, so a backup cannot be replayed into another account.
 */
export const BACKUP_ALGORITHM = 'xchacha20poly1305-hkdf-sha256.v1';
const VERSION = 1;
const SALT_LEN = 16;
const NONCE_LEN = 24;
const HEADER_LEN = 1 + SALT_LEN + NONCE_LEN;
const TAG_LEN = 16;

export type BackupErrorCode = 'wrong_recovery_key' | 'unsupported_version' | 'malformed';

export class BackupError extends Error {
  override readonly name = 'BackupError';
  constructor(
    readonly code: BackupErrorCode,
    message: string,
  ) {
    super(message);
  }
}

// Recovery keys are shown as 4-character groups of an alphabet without 0/O/1/I/L.
const ALPHABET = 'ABCDEFGHJKMNPQRSTUVWXYZ23456789';

export function newRecoveryKey(
  random: (n: number) => Uint8Array = (n) => globalThis.crypto.getRandomValues(new Uint8Array(n)),
): Uint8Array {
  return random(32);
}

/** 32 bytes → 52 base-31 digits in groups of 4, plus a 4-digit checksum group. */
export function formatRecoveryKey(key: Uint8Array): string {
  if (!(key instanceof Uint8Array) || key.length !== 32) throw new TypeError('key: expected 32 bytes');
  const digits = toBase(key, 52);
  const check = toBase(sha256(key).subarray(0, 3), 4);
  return `${digits}${check}`.match(/.{4}/g)!.join(' ');
}

/** Parses a typed recovery key (spaces, dashes and case ignored); throws BackupError('malformed'). */
export function parseRecoveryKey(text: string): Uint8Array {
  const clean = String(text).toUpperCase().replace(/[\s-]/g, '');
  if (clean.length !== 56 || [...clean].some((c) => !ALPHABET.includes(c))) {
    throw new BackupError('malformed', 'recovery key: expected 56 characters from the recovery key alphabet');
  }
  const key = fromBase(clean.slice(0, 52), 32);
  if (toBase(sha256(key).subarray(0, 3), 4) !== clean.slice(52))
    throw new BackupError('malformed', 'recovery key: checksum mismatch (typo?)');
  return key;
}

function toBase(bytes: Uint8Array, width: number): string {
  let n = 0n;
  for (const b of bytes) n = (n << 8n) | BigInt(b);
  let out = '';
  for (let i = 0; i < width; i++) {
    out = ALPHABET[Number(n % 31n)]! + out;
    n /= 31n;
  }
  return out;
}

function fromBase(text: string, len: number): Uint8Array {
  let n = 0n;
  for (const c of text) n = n * 31n + BigInt(ALPHABET.indexOf(c));
  if (n >> BigInt(len * 8) !== 0n) throw new BackupError('malformed', 'recovery key: out of range');
  const out = new Uint8Array(len);
  for (let i = len - 1; i >= 0; i--) {
    out[i] = Number(n & 0xffn);
    n >>= 8n;
  }
  return out;
}

function aad(userId: string): Uint8Array {
  return utf8(`${BACKUP_ALGORITHM}\u0000${userId}`);
}

function deriveKey(recoveryKey: Uint8Array, salt: Uint8Array): Uint8Array {
  return hkdf(sha256, recoveryKey, salt, utf8('parley key backup v1'), 32);
}

export function sealBackup(recoveryKey: Uint8Array, userId: string, plaintext: Uint8Array, random = newRecoveryKeyRandom): Uint8Array {
  if (!(recoveryKey instanceof Uint8Array) || recoveryKey.length !== 32) throw new TypeError('recoveryKey: expected 32 bytes');
  const salt = random(SALT_LEN);
  const nonce = random(NONCE_LEN);
  const ct = xchacha20poly1305(deriveKey(recoveryKey, salt), nonce, aad(userId)).encrypt(plaintext);
  return concatBytes(Uint8Array.of(VERSION), salt, nonce, ct);
}

/** Throws BackupError: `wrong_recovery_key` when the tag fails, `unsupported_version`, `malformed`. */
export function openBackup(recoveryKey: Uint8Array, userId: string, sealed: Uint8Array): Uint8Array {
  if (!(sealed instanceof Uint8Array) || sealed.length < HEADER_LEN + TAG_LEN) throw new BackupError('malformed', 'backup: too short');
  if (sealed[0] !== VERSION)
    throw new BackupError('unsupported_version', `backup: format version ${sealed[0]} is not supported (this client reads ${VERSION})`);
  const salt = sealed.subarray(1, 1 + SALT_LEN);
  const nonce = sealed.subarray(1 + SALT_LEN, HEADER_LEN);
  try {
    return xchacha20poly1305(deriveKey(recoveryKey, salt), nonce, aad(userId)).decrypt(sealed.subarray(HEADER_LEN));
  } catch {
    throw new BackupError(
      'wrong_recovery_key',
      'backup: the recovery key does not open this backup (wrong key, or a backup of another account)',
    );
  }
}

function newRecoveryKeyRandom(n: number): Uint8Array {
  return globalThis.crypto.getRandomValues(new Uint8Array(n));
}
