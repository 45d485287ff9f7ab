import { isParleyApiError } from '@parley/sdk';

// What a person should read for each server error code: what happened and what to do.
const MESSAGES: Record<string, string> = {
  PARLEY_NETWORK: 'Cannot reach the homeserver. Check your connection or the server address.',
  PARLEY_INVALID_CREDENTIALS: 'Wrong username or password.',
  PARLEY_USER_IN_USE: 'That username is taken. Try another one.',
  PARLEY_WEAK_PASSWORD: 'That password is too weak.',
  PARLEY_REGISTRATION_CLOSED: 'This homeserver does not accept new accounts.',
  PARLEY_REGISTRATION_TOKEN_INVALID: 'The registration token is unknown, used up or expired.',
  PARLEY_USER_DEACTIVATED: 'This account has been deactivated.',
  PARLEY_MISSING_TOKEN: 'You are signed out. Sign in again.',
  PARLEY_UNKNOWN_TOKEN: 'Your session has ended. Sign in again.',
  PARLEY_TOKEN_EXPIRED: 'Your session has expired. Sign in again.',
  PARLEY_FORBIDDEN: 'You are not allowed to do that here.',
  PARLEY_NOT_FOUND: 'Not found.',
  PARLEY_ALIAS_IN_USE: 'That room address is taken.',
  PARLEY_DUPLICATE_ANNOTATION: 'You already reacted with that.',
  PARLEY_TOO_LARGE: 'That is too large for this homeserver.',
  PARLEY_QUOTA_EXCEEDED: 'Your storage on this homeserver is full.',
  PARLEY_UNSUPPORTED_MEDIA_TYPE: 'The server does not accept that kind of content here.',
  PARLEY_UNAVAILABLE: 'The homeserver is having trouble right now. Try again in a moment.',
  PARLEY_INTERNAL: 'The homeserver hit an internal error.',
};

const FIELD_CODES = new Set(['PARLEY_INVALID_PARAM', 'PARLEY_MISSING_PARAM', 'PARLEY_BAD_JSON']);

export interface ErrorLike {
  code?: string;
  message?: string;
  field?: string | undefined;
  retryAfterMs?: number | undefined;
}

/** One sentence for a person, from an sdk error (or anything thrown). */
export function describeError(err: unknown): string {
  if (isParleyApiError(err)) return describeApiError(err);
  if (err instanceof TypeError) return err.message;
  if (err instanceof Error) return err.message || 'Something went wrong.';
  return 'Something went wrong.';
}

export function describeApiError(err: ErrorLike): string {
  const code = err.code ?? '';
  if (code === 'PARLEY_RATE_LIMITED') {
    const seconds = Math.max(1, Math.ceil((err.retryAfterMs ?? 1000) / 1000));
    return `Slow down: try again in ${seconds} second${seconds === 1 ? '' : 's'}.`;
  }
  if (code === 'PARLEY_NOT_FOUND' && err.message) return capitalize(err.message);
  if (code === 'PARLEY_FORBIDDEN' && err.message) return `Not allowed: ${err.message}.`;
  if (FIELD_CODES.has(code)) return capitalize(err.message || 'Some input is invalid') + '.';
  // hasOwn: a code such as `constructor` must not find Object.prototype's (it showed a function).
  if (Object.hasOwn(MESSAGES, code)) return MESSAGES[code] as string;
  return err.message ? capitalize(err.message) : 'Something went wrong.';
}

/** Whether waiting and retrying could help (network, rate limit, server trouble). */
export function isTransient(err: unknown): boolean {
  if (!isParleyApiError(err)) return false;
  return err.status === 0 || err.status >= 500 || err.code === 'PARLEY_RATE_LIMITED';
}

/** Whether the session is gone and the person must sign in again. */
export function isSessionGone(err: unknown): boolean {
  return isParleyApiError(err) && err.status === 401;
}

function capitalize(s: string): string {
  const trimmed = s.replace(/\.$/, '');
  return trimmed.charAt(0).toUpperCase() + trimmed.slice(1);
}
