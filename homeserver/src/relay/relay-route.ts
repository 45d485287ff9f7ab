import { canonicalJson } from '@parley/federation/canonical';
import type { SigningKey } from '@parley/federation/keys';
import {
  buildRequestEnvelope,
  decodeBody,
  type RelayRequestEnvelope,
  type RelayResponseEnvelope,
  relayForwardPath,
} from '@parley/federation/relay';
import {
  FederationError,
  type FederationRequest,
  type FederationResponse,
  isFederationError,
  parseServerName,
  signRequest,
} from '@parley/federation/transport';
import type { FederationContext } from '../federation/setup.js';

/**
 * Outbound routing through anchor relays (docs/protocol.md, "Anchor relays"): a request for a
 * server reached through relay R is signed for that server exactly as if sent directly, put in
 * an envelope and posted to R's forward endpoint; R's answer is the destination's own.
 *
 * Where a server is reached through a relay comes from, in order: a static map entry
 * `name: relay:<relay>` (tests, LAN set-ups), else its cached key document's `relay`. When we are that relay ourselves, the envelope goes straight to the
 * reserved connection (`local`).
 */
export interface RelayRouteOptions {
  fed: FederationContext;
  identity: SigningKey;
  /** Relays inbound requests named for their origins (`Parley-Relay`): only for a first key fetch that fails directly. */
  hints?: RelayHints;
  /** Delivers an envelope to a server reserved on this server, when we are a relay. */
  local?: (destination: string) => ((envelope: RelayRequestEnvelope) => Promise<RelayResponseEnvelope>) | undefined;
}

export function relayFor(fed: FederationContext, destination: string): string | undefined {
  const fixed = fed.config.static_servers[destination];
  if (fixed?.startsWith('relay:')) return fixed.slice('relay:'.length);
  // The last relay the server's own document named, even past `until`: it has no other address,
  // and a relay it left answers 503 (then it is tried directly, see relayRoute) until a fresh
  // document names the new one.
  return fed.keyStore.cachedDocument(destination)?.relay?.via;
}

const HINT_TTL_MS = 10 * 60_000;
const MAX_HINTS = 10_000;
const KEYS_PATH = '/federation/v1/keys';
const UNREACHABLE = new Set(['connect', 'dns', 'timeout']);

/**
 * What `Parley-Relay` headers said, by origin, for a few minutes, bounded. A server without an
 * inbound port cannot serve its key document to a server meeting it for the first time; its
 * requests name its relay, and that relay is tried for the key fetch only, only after the
 * direct fetch failed, and the document must itself name that relay (`relay.via`).
 */
export class RelayHints {
  readonly #hints = new Map<string, { relay: string; at: number }>();
  constructor(readonly now: () => number) {}

  note(origin: string, relay: string): void {
    if (!relay || relay === origin || parseServerName(relay) === undefined) return;
    this.#hints.delete(origin);
    while (this.#hints.size >= MAX_HINTS) this.#hints.delete(this.#hints.keys().next().value!);
    this.#hints.set(origin, { relay, at: this.now() });
  }

  get(origin: string): string | undefined {
    const hint = this.#hints.get(origin);
    return hint && this.now() - hint.at < HINT_TTL_MS ? hint.relay : undefined;
  }
}

export function relayRoute(options: RelayRouteOptions): (request: FederationRequest) => Promise<FederationResponse | undefined> {
  const { fed, identity } = options;
  return async (request) => {
    const local = options.local?.(request.destination);
    let via = local ? fed.serverName : relayFor(fed, request.destination);
    let hinted = false;
    if (via === undefined && request.method === 'GET' && request.path === KEYS_PATH) {
      via = options.hints?.get(request.destination);
      if (via !== undefined) {
        try {
          return await fed.client.requestDirect(request);
        } catch (err) {
          if (!isFederationError(err) || !UNREACHABLE.has(err.kind)) throw err;
        }
        hinted = true;
      }
    }
    if (via === undefined || via === request.destination) return undefined;
    if (!local && via === fed.serverName) {
      throw new FederationError('connect', request.destination, 'reached through this relay, but it holds no reservation here now');
    }
    const body = request.body === undefined ? undefined : Buffer.from(canonicalJson(request.body, 'body'));
    const authorization =
      (request.signed ?? true)
        ? signRequest(
            {
              method: request.method,
              uri: request.path,
              origin: fed.serverName,
              destination: request.destination,
              content: request.body,
              ts: fed.clock.now(),
            },
            identity,
          )
        : undefined;
    const envelope = buildRequestEnvelope({
      destination: request.destination,
      method: request.method,
      uri: request.path,
      authorization,
      body,
    });
    if (local) return asResponse(request, await local(envelope));
    let response: FederationResponse;
    try {
      response = await fed.client.requestDirect({
        destination: via,
        method: 'POST',
        path: relayForwardPath(request.destination),
        body: envelope,
        raw: request.raw,
        maxBytes: request.maxBytes,
        timeoutMs: request.timeoutMs,
      });
    } catch (err) {
      // The relay no longer holds a reservation its document advertised (past `until`): the
      // server may have an inbound port of its own now, so try it directly once.
      const advertised = fed.keyStore.cachedDocument(request.destination)?.relay;
      const gone = isFederationError(err) && (err.body as { error?: { code?: unknown } })?.error?.code === 'PARLEY_RELAY_NOT_CONNECTED';
      if (gone && advertised && advertised.until < fed.clock.now()) return fed.client.requestDirect(request);
      throw err;
    }
    if (hinted && (response.body as { relay?: { via?: unknown } } | undefined)?.relay?.via !== via) {
      throw new FederationError('http', request.destination, `its key document, fetched through ${via}, does not name that relay`);
    }
    return response;
  };
}

/** A reserved server's answer, delivered locally, as the transport would have returned it. */
function asResponse(request: FederationRequest, response: RelayResponseEnvelope): FederationResponse {
  const bytes = decodeBody(response.body);
  const max = request.maxBytes ?? 1024 * 1024;
  if (bytes.length > max) throw new FederationError('too_large', request.destination, `the answer is larger than ${max} bytes`);
  let body: unknown;
  const parse = () => {
    try {
      return bytes.length === 0 ? undefined : JSON.parse(bytes.toString('utf8'));
    } catch {
      throw new FederationError('bad_json', request.destination, 'the answer is not JSON');
    }
  };
  if (response.status < 200 || response.status > 299) {
    try {
      body = parse();
    } catch {
      body = undefined;
    }
    const errcode = typeof (body as { errcode?: unknown })?.errcode === 'string' ? ` ${(body as { errcode: string }).errcode}` : '';
    throw new FederationError('http', request.destination, `${request.method} ${request.path} answered ${response.status}${errcode}`, {
      status: response.status,
      body,
    });
  }
  body = request.raw ? bytes : parse();
  const headers = response.content_type ? { 'content-type': response.content_type } : {};
  return { status: response.status, headers, body };
}
