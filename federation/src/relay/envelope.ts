import {
  authenticateRequest,
  type KeyLookup,
  parseAuthorization,
  type VerifyRequestOptions,
  type VerifyRequestResult,
} from '../transport/request-auth.js';
import { parseServerName } from '../transport/server-name.js';

/**
 * The relay envelope (docs/protocol.md, "Anchor relays"): one federation request carried by a
 * relay to a server it cannot be dialled at, exactly as the origin signed it for that server.
 *
 * The relay never re-signs, rewrites or opens anything: `authorization` is the origin's
 * `Authorization: Parley …` header signed for `destination` (not for the relay), and `body`
 * holds the exact bytes the origin would have sent directly. The destination checks the
 * signature itself, so a relay that alters the method, URI, body or header is refused there.
 *
 *   POST /federation/v1/relay/forward/<destination>   body: RelayRequestEnvelope (JSON)
 *     → the destination's own answer, status, content type and body unchanged, or a relay
 *       error with a PARLEY_RELAY_* errcode (503 not connected, 429 limits, 413 too large…).
 *
 * Over the reserved WebSocket (`GET /federation/v1/relay/connect`) envelopes travel in JSON
 * text frames, see RelayFrame.
 */

export const RELAY_PROTOCOL_VERSION = 1;
export const RELAY_CONNECT_PATH = '/federation/v1/relay/connect';
export const RELAY_FORWARD_PREFIX = '/federation/v1/relay/forward/';
/** The one request a relay carries without an origin signature: a key document proves itself. */
export const UNSIGNED_RELAY_PATHS: readonly string[] = ['/federation/v1/keys'];

const METHOD = /^[A-Z]{1,16}$/;
const URI = /^\/federation\/v1\/[\x21-\x7e]*$/;
const MAX_URI_LENGTH = 8192;
const MAX_AUTHORIZATION_LENGTH = 2048;
const B64U = /^[A-Za-z0-9_-]*$/;
const CONTENT_TYPE = /^[\x20-\x7e]{1,200}$/;

/** A request as the origin would have sent it to `destination` directly. */
export interface RelayRequestEnvelope {
  v: 1;
  /** The server the request is for (the reserved server). */
  destination: string;
  method: string;
  /** Path and query exactly as signed: `/federation/v1/send/t1`. Always under /federation/v1/. */
  uri: string;
  /** The origin's `Authorization` header, signed for `destination`; absent only for UNSIGNED_RELAY_PATHS. */
  authorization?: string;
  /** The request body's content type, when it has a body. */
  content_type?: string;
  /** The exact body bytes, unpadded base64url; absent when the request has none. */
  body?: string;
}

/** The destination's answer, as it gave it. */
export interface RelayResponseEnvelope {
  v: 1;
  status: number;
  content_type?: string;
  /** The exact body bytes, unpadded base64url. */
  body?: string;
}

/**
 * Frames on the reserved WebSocket, JSON text, one object each:
 *
 *   relay → server   { type: "reserved", reservation }      on connect and after each renew
 *   server → relay   { type: "renew" }                       before `expires_at`
 *   relay → server   { type: "request", id, request }        a forwarded request
 *   server → relay   { type: "response", id, response }      its answer (same id)
 *   relay → server   { type: "error", code, reason }         then the relay closes
 *
 * `id` is chosen by the relay (a decimal string, unique on the connection).
 */
export interface RelayReservation {
  /** The relay's server name. */
  relay: string;
  /** The reserving server's name. */
  server: string;
  /** When the reservation ends unless renewed (ms since the epoch). */
  expires_at: number;
  /** What the relay enforces on this reservation. */
  limits: {
    max_body_bytes: number;
    bytes_per_second: number;
    requests_per_second: number;
    max_in_flight: number;
  };
}

export type RelayFrame =
  | { type: 'reserved'; reservation: RelayReservation }
  | { type: 'renew' }
  | { type: 'request'; id: string; request: RelayRequestEnvelope }
  | { type: 'response'; id: string; response: RelayResponseEnvelope }
  | { type: 'error'; code: string; reason: string };

export type ParseResult<T> = { ok: true; value: T } | { ok: false; reason: string };

/** `/federation/v1/relay/forward/<destination>` for a destination (path-encoded). */
export function relayForwardPath(destination: string): string {
  return `${RELAY_FORWARD_PREFIX}${encodeURIComponent(destination)}`;
}

export function encodeBody(bytes: Uint8Array | undefined): string | undefined {
  return bytes === undefined || bytes.length === 0 ? undefined : Buffer.from(bytes).toString('base64url');
}

export function decodeBody(body: string | undefined): Buffer {
  return body === undefined ? Buffer.alloc(0) : Buffer.from(body, 'base64url');
}

/** How many body bytes an envelope carries, without decoding it. */
export function envelopeBodyBytes(envelope: { body?: string }): number {
  const n = envelope.body?.length ?? 0;
  return Math.floor((n * 3) / 4);
}

/** Builds the envelope for a request the origin signed for `destination`. Throws a TypeError for bad fields. */
export function buildRequestEnvelope(request: {
  destination: string;
  method: string;
  uri: string;
  authorization?: string;
  contentType?: string;
  body?: Uint8Array;
}): RelayRequestEnvelope {
  const envelope: RelayRequestEnvelope = {
    v: RELAY_PROTOCOL_VERSION,
    destination: request.destination,
    method: request.method,
    uri: request.uri,
  };
  if (request.authorization !== undefined) envelope.authorization = request.authorization;
  const body = encodeBody(request.body);
  if (body !== undefined) {
    envelope.body = body;
    envelope.content_type = request.contentType ?? 'application/json';
  }
  const parsed = parseRequestEnvelope(envelope, Number.MAX_SAFE_INTEGER);
  if (!parsed.ok) throw new TypeError(`relay envelope: ${parsed.reason}`);
  return envelope;
}

/**
 * Checks an envelope received as JSON: every field typed and bounded, nothing extra, the body
 * at most `maxBodyBytes`. Never throws; the reason names the field.
 */
export function parseRequestEnvelope(value: unknown, maxBodyBytes: number): ParseResult<RelayRequestEnvelope> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return bad('the envelope is not a JSON object');
  const v = value as Record<string, unknown>;
  for (const key of Object.keys(v)) {
    if (!['v', 'destination', 'method', 'uri', 'authorization', 'content_type', 'body'].includes(key)) {
      return bad(`unknown field ${JSON.stringify(key.slice(0, 40))}`);
    }
  }
  if (v.v !== RELAY_PROTOCOL_VERSION) return bad(`v: expected ${RELAY_PROTOCOL_VERSION}`);
  if (typeof v.destination !== 'string' || parseServerName(v.destination) === undefined) return bad('destination: not a server name');
  if (typeof v.method !== 'string' || !METHOD.test(v.method)) return bad('method: expected an upper-case HTTP method');
  if (typeof v.uri !== 'string' || v.uri.length > MAX_URI_LENGTH || !URI.test(v.uri)) {
    return bad('uri: expected /federation/v1/… in printable ASCII');
  }
  if (v.uri.startsWith('/federation/v1/relay/')) return bad('uri: a relay endpoint cannot be relayed');
  if (v.authorization !== undefined) {
    if (typeof v.authorization !== 'string' || v.authorization.length > MAX_AUTHORIZATION_LENGTH) {
      return bad('authorization: expected the origin’s Authorization header');
    }
  } else if (!(v.method === 'GET' && UNSIGNED_RELAY_PATHS.includes(v.uri))) {
    return bad('authorization: missing (only GET /federation/v1/keys is carried unsigned)');
  }
  if (v.body !== undefined) {
    if (typeof v.body !== 'string' || !B64U.test(v.body)) return bad('body: expected unpadded base64url');
    if (envelopeBodyBytes(v as { body: string }) > maxBodyBytes) return bad(`body: more than ${maxBodyBytes} bytes`);
    if (typeof v.content_type !== 'string' || !CONTENT_TYPE.test(v.content_type)) return bad('content_type: required with a body');
  } else if (v.content_type !== undefined) {
    return bad('content_type: given without a body');
  }
  return { ok: true, value: v as unknown as RelayRequestEnvelope };
}

/** Checks a response envelope from a reserved server. Never throws. */
export function parseResponseEnvelope(value: unknown, maxBodyBytes: number): ParseResult<RelayResponseEnvelope> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return bad('the response is not a JSON object');
  const v = value as Record<string, unknown>;
  for (const key of Object.keys(v)) {
    if (!['v', 'status', 'content_type', 'body'].includes(key)) return bad(`unknown field ${JSON.stringify(key.slice(0, 40))}`);
  }
  if (v.v !== RELAY_PROTOCOL_VERSION) return bad(`v: expected ${RELAY_PROTOCOL_VERSION}`);
  if (typeof v.status !== 'number' || !Number.isInteger(v.status) || v.status < 200 || v.status > 599) {
    return bad('status: expected an HTTP status 200–599');
  }
  if (v.content_type !== undefined && (typeof v.content_type !== 'string' || !CONTENT_TYPE.test(v.content_type))) {
    return bad('content_type: expected a printable string');
  }
  if (v.body !== undefined) {
    if (typeof v.body !== 'string' || !B64U.test(v.body)) return bad('body: expected unpadded base64url');
    if (envelopeBodyBytes(v as { body: string }) > maxBodyBytes) return bad(`body: more than ${maxBodyBytes} bytes`);
  }
  return { ok: true, value: v as unknown as RelayResponseEnvelope };
}

/**
 * The JSON content the origin signed, from the envelope's body bytes: what request
 * verification (verifyRequest) needs as `content`. Undefined without a body; a body that is
 * not JSON gives `{ ok: false }`.
 */
export function envelopeContent(envelope: RelayRequestEnvelope): ParseResult<unknown> {
  if (envelope.body === undefined) return { ok: true, value: undefined };
  try {
    return { ok: true, value: JSON.parse(decodeBody(envelope.body).toString('utf8')) };
  } catch {
    return bad('body: not JSON (federation request bodies are JSON)');
  }
}

/** The origin named in the envelope's Authorization header, unverified (for logs and quotas before verification). */
export function envelopeOrigin(envelope: RelayRequestEnvelope): string | undefined {
  const parsed = parseAuthorization(envelope.authorization);
  return parsed.ok ? parsed.auth.origin : undefined;
}

/**
 * Verifies the origin's signature on an envelope exactly as its destination will: addressed to
 * `envelope.destination`, within the time window, under the origin's key. A relay runs it before
 * carrying anything; the destination runs its ordinary request check on the carried request.
 */
export async function verifyRequestEnvelope(
  envelope: RelayRequestEnvelope,
  keyLookup: KeyLookup,
  options: VerifyRequestOptions = {},
): Promise<VerifyRequestResult> {
  const content = envelopeContent(envelope);
  if (!content.ok) return { ok: false, code: 'PARLEY_FED_BAD_AUTH', reason: content.reason };
  return authenticateRequest(
    envelope.authorization,
    { method: envelope.method, uri: envelope.uri, destination: envelope.destination, content: content.value },
    keyLookup,
    options,
  );
}

/** Parses one WebSocket text frame; `maxBodyBytes` caps any envelope inside. Never throws. */
export function parseRelayFrame(text: string, maxBodyBytes: number): ParseResult<RelayFrame> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return bad('the frame is not JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return bad('the frame is not a JSON object');
  const f = value as Record<string, unknown>;
  const id = typeof f.id === 'string' && /^[0-9]{1,16}$/.test(f.id) ? f.id : undefined;
  switch (f.type) {
    case 'renew':
      return { ok: true, value: { type: 'renew' } };
    case 'request': {
      if (id === undefined) return bad('request: id must be a decimal string');
      const request = parseRequestEnvelope(f.request, maxBodyBytes);
      return request.ok ? { ok: true, value: { type: 'request', id, request: request.value } } : request;
    }
    case 'response': {
      if (id === undefined) return bad('response: id must be a decimal string');
      const response = parseResponseEnvelope(f.response, maxBodyBytes);
      return response.ok ? { ok: true, value: { type: 'response', id, response: response.value } } : response;
    }
    case 'reserved': {
      const r = f.reservation as RelayReservation | undefined;
      const l = r?.limits;
      const positive = (n: unknown) => typeof n === 'number' && Number.isSafeInteger(n) && n > 0;
      if (
        typeof r !== 'object' ||
        r === null ||
        parseServerName(r.relay) === undefined ||
        parseServerName(r.server) === undefined ||
        !positive(r.expires_at) ||
        typeof l !== 'object' ||
        l === null ||
        ![l.max_body_bytes, l.bytes_per_second, l.requests_per_second, l.max_in_flight].every(positive)
      ) {
        return bad('reserved: malformed reservation');
      }
      return { ok: true, value: { type: 'reserved', reservation: r } };
    }
    case 'error':
      return typeof f.code === 'string' && typeof f.reason === 'string'
        ? { ok: true, value: { type: 'error', code: f.code.slice(0, 64), reason: f.reason.slice(0, 500) } }
        : bad('error: code and reason must be strings');
    default:
      return bad('unknown frame type');
  }
}

function bad(reason: string): { ok: false; reason: string } {
  return { ok: false, reason };
}
