import { canonicalJson } from '@parley/federation/canonical';
import type { SigningKey } from '@parley/federation/keys';
import {
  buildRequestEnvelope,
  decodeBody,
  type RelayRequestEnvelope,
  type RelayResponseEnvelope,
  relayForwardPath,
} from '@parley/federation/relay';
import { FederationError, type FederationRequest, type FederationResponse, signRequest } from '@parley/federation/transport';
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
  /** Delivers an envelope to a server reserved on this server, when we are a relay. */
  local?: (destination: string) => ((envelope: RelayRequestEnvelope) => Promise<RelayResponseEnvelope>) | undefined;
}

export function relayFor(fed: FederationContext, destination: string): string | undefined {
  const fixed = fed.config.static_servers[destination];
  if (fixed?.startsWith('relay:')) return fixed.slice('relay:'.length);
  // The last relay the server's own document named, even past `until`: it has no other address,
  // and a relay it left answers 503 (retried) until a fresh document names the new one.
  return fed.keyStore.cachedDocument(destination)?.relay?.via;
}

export function relayRoute(options: RelayRouteOptions): (request: FederationRequest) => Promise<FederationResponse | undefined> {
  const { fed, identity } = options;
  return async (request) => {
    const local = options.local?.(request.destination);
    const via = local ? fed.serverName : relayFor(fed, request.destination);
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
    return fed.client.requestDirect({
      destination: via,
      method: 'POST',
      path: relayForwardPath(request.destination),
      body: envelope,
      raw: request.raw,
      maxBytes: request.maxBytes,
      timeoutMs: request.timeoutMs,
    });
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
