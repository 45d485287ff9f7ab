import { isFederationError } from '@parley/federation/transport';
import { notFound, ParleyError } from '../errors.js';

/**
 * The client-facing answer for a failed query to another server: its 404 stays a 404 (it
 * said no), anything else is a 502. The message names the server and the kind of failure,
 * never its addresses or the transport's own words.
 */
export function remoteFailure(err: unknown, server: string, what: string): ParleyError {
  if (err instanceof ParleyError) return err;
  if (!isFederationError(err)) return new ParleyError(502, 'PARLEY_UNAVAILABLE', `${server} could not be asked for ${what}`);
  if (err.kind === 'http' && err.status === 404) return notFound(`${server} has no ${what}`);
  if (err.kind === 'too_large')
    return new ParleyError(502, 'PARLEY_TOO_LARGE', `${server} answered for ${what} with more than this server accepts`);
  const why: Record<string, string> = {
    ssrf: 'its address is not one this server may dial',
    dns: 'its name does not resolve',
    connect: 'it could not be reached',
    tls: 'its TLS certificate was not accepted',
    timeout: 'it did not answer in time',
    bad_json: 'it answered with something that is not JSON',
    http: `it answered ${err.status}`,
  };
  return new ParleyError(502, 'PARLEY_UNAVAILABLE', `${server} could not be asked for ${what}: ${why[err.kind] ?? err.kind}`);
}
