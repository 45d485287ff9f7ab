import type { Next } from 'koa';
import { ParleyError } from '../../errors.js';
import type { AppContext } from '../context.js';

/**
 * The single error path. ParleyErrors are answered as written; client errors raised by
 * libraries (http-errors with `expose`) are mapped to a code; everything else is a 500
 * that names nothing internal and is logged with the request ID.
 */
export async function errorHandler(ctx: AppContext, next: Next): Promise<void> {
  try {
    await next();
  } catch (err) {
    const error = toParleyError(err);
    if (error.status >= 500) ctx.state.log.error({ err }, 'request failed');
    else ctx.state.log.info({ code: error.code, status: error.status, msg_detail: error.message }, 'request refused');
    ctx.status = error.status;
    ctx.body = error.toBody();
    if (error.retryAfterMs !== undefined) ctx.set('Retry-After', String(Math.max(1, Math.ceil(error.retryAfterMs / 1000))));
  }
}

/** A body over its size cap (413), as the HTTP API answers it. */
export const bodyTooLarge = () => new ParleyError(413, 'PARLEY_TOO_LARGE', 'request body exceeds the size cap');

/** What a thrown error becomes for the client: the HTTP API's mapping, also used by the stream's `send`. */
export function toParleyError(err: unknown): ParleyError {
  if (err instanceof ParleyError) return err;
  const e = err as { status?: number; statusCode?: number; expose?: boolean; type?: string; message?: string };
  const status = e?.status ?? e?.statusCode;
  if (typeof status === 'number' && status >= 400 && status < 500 && e.expose !== false) {
    if (status === 413) return bodyTooLarge();
    if (status === 415) return new ParleyError(415, 'PARLEY_UNSUPPORTED_MEDIA_TYPE', e.message ?? 'unsupported content type');
    if (status === 404) return new ParleyError(404, 'PARLEY_NOT_FOUND', 'no such resource');
    if (status === 405) return new ParleyError(405, 'PARLEY_METHOD_NOT_ALLOWED', 'method not allowed on this path');
    return new ParleyError(status, 'PARLEY_INVALID_PARAM', e.message ?? 'bad request');
  }
  if (isDatabaseUnavailable(err)) {
    return new ParleyError(503, 'PARLEY_UNAVAILABLE', 'the database is unavailable; try again shortly');
  }
  return new ParleyError(500, 'PARLEY_INTERNAL', 'internal error');
}

const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENOTFOUND', 'EPIPE']);

/**
 * Failures of the database connection rather than of the query: network errors, SQLSTATE
 * classes 08 (connection exception) and 57P (shutdown), any FATAL-severity error (raised
 * while connecting, e.g. a database refusing connections), and pool acquisition timeouts.
 */
function isDatabaseUnavailable(err: unknown): boolean {
  const e = err as { code?: unknown; severity?: unknown; name?: unknown; message?: unknown } | null;
  if (!e || typeof e !== 'object') return false;
  const code = typeof e.code === 'string' ? e.code : '';
  // 08P01 (protocol violation, e.g. too many bind parameters) is our bug, not an outage.
  if (NETWORK_CODES.has(code) || (code.startsWith('08') && code !== '08P01') || code.startsWith('57P')) return true;
  if (e.severity === 'FATAL') return true;
  return e.name === 'KnexTimeoutError' || (typeof e.message === 'string' && e.message.includes('Timeout acquiring a connection'));
}
