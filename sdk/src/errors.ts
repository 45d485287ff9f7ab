import type { ErrorBody, ErrorCode } from '@parley/schemas';

/** Codes the SDK adds for failures that never produced a server answer. */
export type ParleyErrorCode = ErrorCode | 'PARLEY_NETWORK';

export interface ParleyApiErrorInit {
  /** HTTP status, or 0 when no response arrived. */
  status: number;
  code: string;
  message: string;
  field?: string | undefined;
  retryAfterMs?: number | undefined;
  cause?: unknown;
}

/**
 * The only error the client rejects with for anything the server (or the network) did,
 * so callers need one `instanceof` check and never see a raw fetch TypeError.
 */
export class ParleyApiError extends Error {
  override name = 'ParleyApiError';
  readonly status: number;
  /**
   * Usually a {@link ParleyErrorCode}; typed as string because a newer server may answer
   * with codes this SDK does not know yet.
   */
  readonly code: string;
  readonly field: string | undefined;
  readonly retryAfterMs: number | undefined;

  constructor(init: ParleyApiErrorInit) {
    super(init.message, init.cause === undefined ? undefined : { cause: init.cause });
    this.status = init.status;
    this.code = init.code;
    this.field = init.field;
    this.retryAfterMs = init.retryAfterMs;
  }
}

export function isParleyApiError(err: unknown, code?: ParleyErrorCode): err is ParleyApiError {
  return err instanceof ParleyApiError && (code === undefined || err.code === code);
}

export function networkError(method: string, url: string, cause: unknown): ParleyApiError {
  const reason = cause instanceof Error ? cause.message : String(cause);
  return new ParleyApiError({
    status: 0,
    code: 'PARLEY_NETWORK',
    message: `${method} ${url} failed: ${reason}`,
    cause,
  });
}

/** A 2xx answer whose body is not the JSON we were promised. */
export function malformedResponse(status: number, detail: string): ParleyApiError {
  return new ParleyApiError({
    status,
    code: 'PARLEY_INTERNAL',
    message: `malformed response (HTTP ${status}): ${detail}`,
  });
}

/**
 * Builds the error for a non-2xx answer. Bodies that are not a Parley error (an HTML page
 * from a reverse proxy, a truncated body) still become a ParleyApiError with the status kept.
 */
export function errorFromResponse(status: number, headers: Headers, text: string): ParleyApiError {
  const body = parseErrorBody(text);
  const retryAfterMs = body?.error.retry_after_ms ?? retryAfterHeaderMs(headers.get('retry-after'));
  if (body === null) {
    return new ParleyApiError({
      status,
      code: 'PARLEY_INTERNAL',
      message: `HTTP ${status} without a Parley error body`,
      retryAfterMs,
    });
  }
  return new ParleyApiError({
    status,
    code: body.error.code,
    message: body.error.message,
    field: body.error.field,
    retryAfterMs,
  });
}

function parseErrorBody(text: string): ErrorBody | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof value !== 'object' || value === null) return null;
  const error = (value as { error?: unknown }).error;
  if (typeof error !== 'object' || error === null) return null;
  const { code, message, field, retry_after_ms } = error as Record<string, unknown>;
  if (typeof code !== 'string' || typeof message !== 'string') return null;
  return {
    error: {
      code,
      message,
      ...(typeof field === 'string' ? { field } : {}),
      ...(isNonNegativeInteger(retry_after_ms) ? { retry_after_ms } : {}),
    },
  };
}

// RFC 9110 §10.2.3 also allows an HTTP-date; Parley servers send delay-seconds only, and a
// date would need a trustworthy local clock to mean anything, so it is ignored.
function retryAfterHeaderMs(value: string | null): number | undefined {
  if (value === null || !/^\s*\d+\s*$/.test(value)) return undefined;
  return Number(value) * 1000;
}

function isNonNegativeInteger(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0;
}
