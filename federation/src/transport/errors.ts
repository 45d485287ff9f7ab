/**
 * What went wrong with an outbound federation request, as one of a few kinds the delivery
 * engine can act on: `ssrf` and `tls` will not heal by retrying soon, `dns`, `connect`,
 * `timeout` and 5xx `http` may; `too_large` and `bad_json` point at the peer.
 */
export type FederationErrorKind = 'ssrf' | 'dns' | 'connect' | 'tls' | 'timeout' | 'too_large' | 'http' | 'bad_json';

export class FederationError extends Error {
  override readonly name = 'FederationError';
  readonly kind: FederationErrorKind;
  /** The server name the request was for (or the URL's host for fetchJson). */
  readonly destination: string;
  /** The HTTP status, for kind 'http' (and for 'too_large' / 'bad_json' once headers arrived). */
  readonly status: number | undefined;
  /** The parsed JSON error body of an 'http' failure, when there was one (capped like any body). */
  readonly body: unknown;

  constructor(
    kind: FederationErrorKind,
    destination: string,
    message: string,
    details: { status?: number; body?: unknown; cause?: unknown } = {},
  ) {
    super(`${destination}: ${message}`, details.cause === undefined ? undefined : { cause: details.cause });
    this.kind = kind;
    this.destination = destination;
    this.status = details.status;
    this.body = details.body;
  }
}

export function isFederationError(err: unknown): err is FederationError {
  return err instanceof FederationError;
}
