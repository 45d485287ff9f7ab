import type { KeyObject } from 'node:crypto';
import { canonicalJson } from '../canonical/canonical-json.js';
import { SIGNATURE_BYTES, signBytes, verifyBytes } from '../keys/ed25519.js';
import { KEY_ID_PATTERN, type SigningKey } from '../keys/signing-key.js';
import { parseServerName } from './server-name.js';

/**
 * Server-to-server request authentication (docs/protocol.md):
 *
 *   Authorization: Parley origin="a.test",destination="b.test",key="ed25519:a_x",ts="1765000000000",sig="…"
 *
 * `sig` is Ed25519 (unpadded base64url) over the canonical JSON of
 * `{ method, uri, origin, destination, content, ts }`, where `uri` is the request target exactly
 * as sent (path and query, RFC 9112 §3.2.1 origin-form), `content` is the parsed JSON body,
 * left out when the request has none, and `ts` is when it was signed (ms since the epoch).
 * Signing the destination stops a request for one server from being replayed to another;
 * signing the method and URI stops it being re-aimed; signing the time lets the receiver refuse
 * a captured request replayed later (outside REQUEST_TIME_WINDOW_MS either way).
 */

export const AUTH_SCHEME = 'Parley';
/** Longer headers are refused before any parsing: four short fields never need more. */
export const MAX_AUTHORIZATION_LENGTH = 2048;
const MAX_URI_LENGTH = 8192;
const METHOD = /^[A-Z]{1,16}$/;
// RFC 9112 §3.2.1 origin-form in printable ASCII; clients percent-encode the rest.
const URI = /^\/[\x21-\x7e]*$/;
const SIGNATURE_B64U = /^[A-Za-z0-9_-]{86}$/;
// Milliseconds since the epoch, no sign, no leading zero: one spelling per instant.
const TS = /^(?:0|[1-9][0-9]{0,15})$/;
/**
 * How far a request's `ts` may be from the receiver's clock, either way, by default: long enough
 * for NTP-synchronised clocks and a slow network, short enough that a captured request stops
 * working within minutes (transactions are also idempotent by `(origin, txnId)`).
 */
export const REQUEST_TIME_WINDOW_MS = 5 * 60_000;

export interface RequestToSign {
  method: string;
  uri: string;
  origin: string;
  destination: string;
  /** The JSON body; leave undefined when the request has none. */
  content?: unknown;
  /** When it is signed, ms since the epoch; signRequest() defaults to Date.now(). */
  ts?: number;
}

export interface ParsedAuthorization {
  origin: string;
  destination: string;
  /** `ed25519:<keyId>` as written. */
  key: string;
  keyId: string;
  /** When the origin signed it, ms since the epoch. */
  ts: number;
  signature: Uint8Array;
}

export type AuthFailureCode =
  | 'PARLEY_FED_BAD_AUTH'
  | 'PARLEY_FED_WRONG_DESTINATION'
  | 'PARLEY_FED_STALE_REQUEST'
  | 'PARLEY_FED_UNKNOWN_KEY'
  | 'PARLEY_FED_BAD_SIGNATURE';
export interface AuthFailure {
  ok: false;
  code: AuthFailureCode;
  reason: string;
}
export type ParseAuthorizationResult = { ok: true; auth: ParsedAuthorization } | AuthFailure;
export type VerifyRequestResult = { ok: true; origin: string; keyId: string } | AuthFailure;

/** The request as the receiving server saw it. */
export interface ReceivedRequest {
  method: string;
  uri: string;
  /** Our own server name: the request must be addressed to it. */
  destination: string;
  /** The parsed JSON body, or undefined when there was none. */
  content?: unknown;
}

export interface VerifyRequestOptions {
  /** The receiver's clock, ms since the epoch; default Date.now(). */
  now?: number;
  /** Accepted distance between `ts` and `now`, either way; default REQUEST_TIME_WINDOW_MS. */
  windowMs?: number;
}

/** Finds a server's Ed25519 public key by key ID (without `ed25519:`), fetching it if need be. */
export type KeyLookup = (origin: string, keyId: string) => Promise<KeyObject | undefined> | KeyObject | undefined;

/** The bytes a request signature covers. Throws a TypeError naming a bad field. */
export function requestSigningInput(request: RequestToSign): Uint8Array {
  if (typeof request !== 'object' || request === null) throw new TypeError('request: expected an object');
  const { method, uri, origin, destination, content, ts } = request;
  if (typeof method !== 'string' || !METHOD.test(method)) throw new TypeError('request.method: expected an upper-case HTTP method');
  if (typeof uri !== 'string' || uri.length > MAX_URI_LENGTH || !URI.test(uri)) {
    throw new TypeError('request.uri: expected an origin-form request target (/path?query) in printable ASCII');
  }
  if (parseServerName(origin) === undefined) throw new TypeError('request.origin: expected a server name');
  if (parseServerName(destination) === undefined) throw new TypeError('request.destination: expected a server name');
  if (!isTimestamp(ts)) throw new TypeError('request.ts: expected a non-negative integer (ms since the epoch)');
  const signed: Record<string, unknown> = { method, uri, origin, destination, ts };
  if (content !== undefined) signed.content = content;
  return new TextEncoder().encode(canonicalJson(signed, 'request'));
}

/** Signs a request and returns the `Authorization` header value. Throws a TypeError for bad arguments. */
export function signRequest(request: RequestToSign, key: SigningKey): string {
  if (typeof key !== 'object' || key === null || typeof key.keyId !== 'string' || !KEY_ID_PATTERN.test(key.keyId)) {
    throw new TypeError('key: expected a SigningKey');
  }
  if (typeof request !== 'object' || request === null) throw new TypeError('request: expected an object');
  const dated = request.ts === undefined ? { ...request, ts: Date.now() } : request;
  const sig = Buffer.from(signBytes(requestSigningInput(dated), key.privateKey)).toString('base64url');
  return `${AUTH_SCHEME} origin="${dated.origin}",destination="${dated.destination}",key="ed25519:${key.keyId}",ts="${dated.ts}",sig="${sig}"`;
}

function isTimestamp(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

const FIELDS = ['origin', 'destination', 'key', 'ts', 'sig'] as const;
type Field = (typeof FIELDS)[number];
// RFC 9110 §5.6.2 tchar, plus ':' '[' ']' so server names and key IDs may go unquoted.
const UNQUOTED = /[!#$%&'*+\-.^_`|~0-9A-Za-z:[\]]/;

/**
 * Parses the header value with the RFC 9110 §11.4 grammar: the scheme (case-insensitive,
 * §11.1), one or more spaces, then `name=value` pairs separated by commas with optional
 * whitespace, each value a token or a quoted-string (§5.6.4). Each of the four fields must
 * appear exactly once and nothing else may: an unknown parameter is more likely a mistake or
 * a probe than an extension. Never throws.
 */
export function parseAuthorization(header: unknown): ParseAuthorizationResult {
  if (typeof header !== 'string' || header === '') return badAuth('no Authorization header');
  if (header.length > MAX_AUTHORIZATION_LENGTH)
    return badAuth(`the Authorization header is longer than ${MAX_AUTHORIZATION_LENGTH} characters`);
  if (!/^[\t\x20-\x7e]*$/.test(header)) return badAuth('the Authorization header contains control or non-ASCII characters');
  const space = header.indexOf(' ');
  if (space < 0 || header.slice(0, space).toLowerCase() !== AUTH_SCHEME.toLowerCase()) {
    return badAuth(`the Authorization scheme is not ${AUTH_SCHEME}`);
  }
  const fields = new Map<Field, string>();
  const text = header;
  let i = space;
  while (text[i] === ' ') i++;
  const skipOws = () => {
    while (text[i] === ' ' || text[i] === '\t') i++;
  };
  for (;;) {
    const nameStart = i;
    while (i < text.length && /[A-Za-z]/.test(text[i]!)) i++;
    const name = text.slice(nameStart, i).toLowerCase();
    if (name === '') return badAuth(`expected a parameter name at offset ${nameStart}`);
    if (name.length > 32) return badAuth(`parameter name at offset ${nameStart} is too long`);
    skipOws();
    if (text[i] !== '=') return badAuth(`expected '=' after ${name}`);
    i++;
    skipOws();
    let value = '';
    if (text[i] === '"') {
      i++;
      for (;;) {
        const c = text[i];
        if (c === undefined) return badAuth(`unterminated quoted value for ${name}`);
        i++;
        if (c === '"') break;
        if (c === '\\') {
          if (i >= text.length) return badAuth(`unterminated quoted value for ${name}`);
          value += text[i++];
        } else {
          value += c;
        }
      }
    } else {
      while (i < text.length && UNQUOTED.test(text[i]!)) value += text[i++];
    }
    if (!(FIELDS as readonly string[]).includes(name)) return badAuth(`unknown parameter ${JSON.stringify(name.slice(0, 32))}`);
    if (fields.has(name as Field)) return badAuth(`parameter ${name} appears twice`);
    if (value === '') return badAuth(`parameter ${name} is empty`);
    fields.set(name as Field, value);
    skipOws();
    if (i >= text.length) break;
    if (text[i] !== ',') return badAuth(`unexpected ${JSON.stringify(text[i])} after ${name}`);
    i++;
    skipOws();
  }
  for (const field of FIELDS) if (!fields.has(field)) return badAuth(`parameter ${field} is missing`);
  return checkFields(fields.get('origin')!, fields.get('destination')!, fields.get('key')!, fields.get('ts')!, fields.get('sig')!);
}

function checkFields(origin: unknown, destination: unknown, key: unknown, ts: unknown, sig: string): ParseAuthorizationResult {
  if (parseServerName(origin) === undefined) return badAuth('origin is not a server name');
  if (parseServerName(destination) === undefined) return badAuth('destination is not a server name');
  if (typeof key !== 'string' || !key.startsWith('ed25519:') || !KEY_ID_PATTERN.test(key.slice(8))) {
    return badAuth('key is not ed25519:<keyId>');
  }
  const time = typeof ts === 'string' && TS.test(ts) ? Number(ts) : typeof ts === 'number' ? ts : Number.NaN;
  if (!isTimestamp(time)) return badAuth('ts is not a time in ms since the epoch');
  // One spelling per signature: padding, the standard alphabet and stray low bits are refused.
  const signature = SIGNATURE_B64U.test(sig) ? Buffer.from(sig, 'base64url') : undefined;
  if (signature === undefined || signature.length !== SIGNATURE_BYTES || signature.toString('base64url') !== sig) {
    return badAuth('sig is not 64 bytes of unpadded base64url');
  }
  const auth = {
    origin: origin as string,
    destination: destination as string,
    key,
    keyId: key.slice(8),
    ts: time,
    signature: new Uint8Array(signature),
  };
  return { ok: true, auth };
}

/**
 * Verifies a parsed header against the request we received. Checks run cheapest first, and
 * the key lookup (which may fetch over the network) only after the destination and the time
 * matched, so neither a request for another server nor a replayed one makes us dial out.
 * Returns a failure with a code for every problem, including a key lookup that throws.
 */
export async function verifyRequest(
  parsed: ParsedAuthorization,
  request: ReceivedRequest,
  keyLookup: KeyLookup,
  options: VerifyRequestOptions = {},
): Promise<VerifyRequestResult> {
  if (typeof parsed !== 'object' || parsed === null) return badAuth('no parsed Authorization');
  const recheck = checkFields(parsed.origin, parsed.destination, parsed.key, parsed.ts, sigText(parsed.signature));
  if (!recheck.ok) return recheck;
  const auth = recheck.auth;
  if (typeof request !== 'object' || request === null) return badAuth('no request to verify');
  const early = checkAddressAndTime(auth, request.destination, options);
  if (early) return early;
  let message: Uint8Array;
  try {
    message = requestSigningInput({ ...request, origin: auth.origin, destination: auth.destination, ts: auth.ts });
  } catch (err) {
    return badAuth(`the request cannot be signed as sent: ${(err as Error).message}`);
  }
  let publicKey: KeyObject | undefined;
  try {
    publicKey = await keyLookup(auth.origin, auth.keyId);
  } catch {
    return { ok: false, code: 'PARLEY_FED_UNKNOWN_KEY', reason: `could not fetch ${auth.key} of ${auth.origin}` };
  }
  if (publicKey === undefined || publicKey === null) {
    return { ok: false, code: 'PARLEY_FED_UNKNOWN_KEY', reason: `${auth.origin} has no key ${auth.key}` };
  }
  if (!verifyBytes(auth.signature, message, publicKey)) {
    return { ok: false, code: 'PARLEY_FED_BAD_SIGNATURE', reason: `the signature does not verify under ${auth.origin}'s ${auth.key}` };
  }
  return { ok: true, origin: auth.origin, keyId: auth.keyId };
}

/**
 * The checks that need neither the body nor a key: addressed to `destination`, and signed
 * within the time window. A server runs them before it reads a body, so a request for another
 * server or a replayed one costs it neither the body nor a key fetch. Undefined when both pass.
 */
export function checkAddressAndTime(
  parsed: ParsedAuthorization,
  destination: string,
  options: VerifyRequestOptions = {},
): AuthFailure | undefined {
  if (typeof parsed !== 'object' || parsed === null || !isTimestamp(parsed.ts)) return badAuth('no parsed Authorization');
  if (parsed.destination !== destination) {
    return {
      ok: false,
      code: 'PARLEY_FED_WRONG_DESTINATION',
      reason: `the request is addressed to ${parsed.destination}, not to this server`,
    };
  }
  const now = options?.now ?? Date.now();
  const windowMs = options?.windowMs ?? REQUEST_TIME_WINDOW_MS;
  if (!isTimestamp(now) || !isTimestamp(windowMs)) return badAuth('options: now and windowMs must be non-negative integers');
  if (Math.abs(parsed.ts - now) > windowMs) {
    const how =
      parsed.ts < now ? `${Math.round((now - parsed.ts) / 1000)} s ago` : `${Math.round((parsed.ts - now) / 1000)} s in the future`;
    return {
      ok: false,
      code: 'PARLEY_FED_STALE_REQUEST',
      reason: `the request was signed ${how}; this server accepts ${Math.round(windowMs / 1000)} s either way (replayed, or the clocks disagree)`,
    };
  }
  return undefined;
}

/** parseAuthorization then verifyRequest: what the homeserver's federation middleware calls once per request. */
export async function authenticateRequest(
  header: unknown,
  request: ReceivedRequest,
  keyLookup: KeyLookup,
  options: VerifyRequestOptions = {},
): Promise<VerifyRequestResult> {
  const parsed = parseAuthorization(header);
  return parsed.ok ? verifyRequest(parsed.auth, request, keyLookup, options) : parsed;
}

function sigText(signature: unknown): string {
  return signature instanceof Uint8Array ? Buffer.from(signature).toString('base64url') : '';
}

function badAuth(reason: string): AuthFailure {
  return { ok: false, code: 'PARLEY_FED_BAD_AUTH', reason };
}
