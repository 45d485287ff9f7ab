import { type ErrorCode, ErrorCodes } from '@parley/schemas';

/**
 * The one error type handlers throw. Only ParleyErrors reach the client as written;
 * anything else becomes a 500 PARLEY_INTERNAL without internals.
 */
export class ParleyError extends Error {
  override name = 'ParleyError';
  readonly code: ErrorCode;
  readonly status: number;
  readonly field: string | undefined;
  readonly retryAfterMs: number | undefined;

  constructor(status: number, code: ErrorCode, message?: string, extra: { field?: string; retryAfterMs?: number } = {}) {
    super(message ?? ErrorCodes[code]);
    this.status = status;
    this.code = code;
    this.field = extra.field;
    this.retryAfterMs = extra.retryAfterMs;
  }

  toBody(): { error: { code: string; message: string; field?: string; retry_after_ms?: number } } {
    const error: { code: string; message: string; field?: string; retry_after_ms?: number } = {
      code: this.code,
      message: this.message,
    };
    if (this.field !== undefined) error.field = this.field;
    if (this.retryAfterMs !== undefined) error.retry_after_ms = this.retryAfterMs;
    return { error };
  }
}

export const badRequest = (code: ErrorCode, message: string, field?: string) =>
  new ParleyError(400, code, message, field === undefined ? {} : { field });
export const unauthorized = (code: ErrorCode, message?: string) => new ParleyError(401, code, message);
export const forbidden = (message?: string) => new ParleyError(403, 'PARLEY_FORBIDDEN', message);
export const notFound = (message?: string) => new ParleyError(404, 'PARLEY_NOT_FOUND', message);
