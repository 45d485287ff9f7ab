import type { Session, TokenPair } from '@parley/schemas';

/**
 * What a client keeps between requests (and an app persists between page loads). Not a
 * wire shape: the server's relative `expires_in_ms` becomes an absolute deadline so a
 * restored session knows whether its access token is still good.
 */
export type StoredSession = Readonly<Pick<Session, 'user_id' | 'device_id' | 'access_token' | 'refresh_token'> & { expires_at_ms: number }>;

/**
 * `issuedAtMs` should be taken before the request was sent, so network latency makes the
 * deadline early rather than late.
 */
export function storedFromSession(session: Session, issuedAtMs: number): StoredSession {
  return Object.freeze({
    user_id: session.user_id,
    device_id: session.device_id,
    access_token: session.access_token,
    refresh_token: session.refresh_token,
    expires_at_ms: issuedAtMs + session.expires_in_ms,
  });
}

export function storedWithTokens(session: StoredSession, pair: TokenPair, issuedAtMs: number): StoredSession {
  return Object.freeze({
    ...session,
    access_token: pair.access_token,
    refresh_token: pair.refresh_token,
    expires_at_ms: issuedAtMs + pair.expires_in_ms,
  });
}

/**
 * A session handed to the constructor usually comes from localStorage or a file, so it is
 * checked field by field rather than trusted; a corrupt one fails here, not on first use.
 */
export function assertStoredSession(value: unknown, name: string): StoredSession {
  if (typeof value !== 'object' || value === null) throw new TypeError(`${name} must be an object`);
  const s = value as Record<string, unknown>;
  for (const key of ['user_id', 'device_id', 'access_token', 'refresh_token'] as const) {
    if (typeof s[key] !== 'string' || s[key] === '') throw new TypeError(`${name}.${key} must be a non-empty string`);
  }
  if (typeof s.expires_at_ms !== 'number' || !Number.isFinite(s.expires_at_ms)) {
    throw new TypeError(`${name}.expires_at_ms must be a finite number`);
  }
  return Object.freeze({
    user_id: s.user_id as string,
    device_id: s.device_id as string,
    access_token: s.access_token as string,
    refresh_token: s.refresh_token as string,
    expires_at_ms: s.expires_at_ms,
  });
}
