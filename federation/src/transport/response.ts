import type { Dispatcher } from 'undici';
import { FederationError } from './errors.js';

/**
 * Reading a peer's response within its caps, and turning undici's errors into the transport's
 * few kinds. Leaving a body early destroys it, which makes undici close the connection instead
 * of keeping a half-read socket in the pool.
 */

export async function readCappedBody(response: Dispatcher.ResponseData, maxBytes: number, destination: string): Promise<Buffer> {
  const { body, statusCode: status } = response;
  const declared = Number(response.headers['content-length']);
  if (Number.isFinite(declared) && declared > maxBytes) {
    body.destroy();
    throw new FederationError('too_large', destination, `response declares ${declared} bytes, more than the ${maxBytes} allowed`, {
      status,
    });
  }
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of body) {
    total += (chunk as Buffer).length;
    if (total > maxBytes) {
      body.destroy();
      throw new FederationError('too_large', destination, `response is longer than the ${maxBytes} bytes allowed`, { status });
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks, total);
}

/** JSON.parse that reports a FederationError; an empty body is null only for 204. */
export function parseJsonBody(bytes: Buffer, destination: string, status: number): unknown {
  if (bytes.length === 0) {
    if (status === 204) return null;
    throw new FederationError('bad_json', destination, 'response body is empty', { status });
  }
  try {
    return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (err) {
    throw new FederationError('bad_json', destination, `response body is not JSON: ${(err as Error).message.slice(0, 200)}`, { status });
  }
}

/** Maps whatever undici or the connector threw to a FederationError. `timedOut` says our own deadline fired. */
export function classifyError(err: unknown, destination: string, timedOut: boolean, deadlineMs: number): FederationError {
  if (err instanceof FederationError) return err;
  if (timedOut) return new FederationError('timeout', destination, `no complete response within ${deadlineMs} ms`, { cause: err });
  const code = (err as { code?: unknown })?.code;
  const message = (err as Error)?.message ?? String(err);
  switch (code) {
    case 'UND_ERR_CONNECT_TIMEOUT':
    case 'UND_ERR_HEADERS_TIMEOUT':
    case 'UND_ERR_BODY_TIMEOUT':
      return new FederationError('timeout', destination, message, { cause: err });
    case 'UND_ERR_HEADERS_OVERFLOW':
    case 'UND_ERR_RES_EXCEEDED_MAX_SIZE':
      return new FederationError('too_large', destination, message, { cause: err });
    default:
      // The peer closed or reset the connection, or sent something that is not HTTP/1.1.
      return new FederationError('connect', destination, typeof code === 'string' ? `${code}: ${message}` : message, { cause: err });
  }
}
