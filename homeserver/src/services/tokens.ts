import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * Opaque bearer tokens: `<kind>_<id>_<secret>`. The id locates the row; only the SHA-256
 * of the secret is stored, and it is compared in constant time.
 */
export type TokenPrefix = 'pat' | 'prt';

const TOKEN_RE = /^(pat|prt)_([0-9a-f]{24})_([A-Za-z0-9_-]{43})$/;

export interface MintedToken {
  token: string;
  id: string;
  secretHash: Buffer;
}

export function mintToken(prefix: TokenPrefix): MintedToken {
  const id = randomBytes(12).toString('hex');
  const secret = randomBytes(32).toString('base64url');
  return { token: `${prefix}_${id}_${secret}`, id, secretHash: sha256(secret) };
}

export function parseToken(token: string, prefix: TokenPrefix): { id: string; secret: string } | null {
  const m = TOKEN_RE.exec(token);
  if (!m || m[1] !== prefix) return null;
  return { id: m[2] as string, secret: m[3] as string };
}

export function secretMatches(secret: string, storedHash: Buffer): boolean {
  const candidate = sha256(secret);
  return candidate.length === storedHash.length && timingSafeEqual(candidate, storedHash);
}

function sha256(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

/** Device IDs: 10 uppercase letters, like Matrix, readable in a device list. */
export function newDeviceId(): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ';
  const bytes = randomBytes(10);
  let out = '';
  for (const b of bytes) out += alphabet[b % 26];
  return out;
}
