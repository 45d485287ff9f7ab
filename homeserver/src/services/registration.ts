import { randomBytes } from 'node:crypto';
import type { RegistrationTokenRepository, RegistrationTokenRow } from '../repositories/registration-tokens.js';
import type { Clock } from './clock.js';

const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3600_000, d: 86_400_000 };

/** "30m", "12h", "7d" → milliseconds; undefined when unreadable. */
export function parseDuration(text: string): number | undefined {
  const m = /^(\d{1,6})([smhd])$/.exec(text.trim());
  if (!m) return undefined;
  return Number(m[1]) * (UNIT_MS[m[2] as string] as number);
}

export async function mintRegistrationToken(
  repo: RegistrationTokenRepository,
  clock: Clock,
  usesAllowed: number | null,
  ttlMs: number | null,
): Promise<RegistrationTokenRow> {
  const now = clock.now();
  const row: RegistrationTokenRow = {
    token: randomBytes(18).toString('base64url'),
    uses_allowed: usesAllowed,
    uses_completed: 0,
    expires_ts: ttlMs === null ? null : now + ttlMs,
    created_ts: now,
  };
  await repo.insert(row);
  return row;
}
