import { type AuthFailure, checkAddressAndTime, parseAuthorization, verifyRequest } from '@parley/federation/transport';
import type { Next } from 'koa';
import getRawBody from 'raw-body';
import { ParleyError } from '../../errors.js';
import type { FederationContext } from '../../federation/setup.js';
import type { AppContext } from '../context.js';

export interface FederationState {
  origin: string;
  body: unknown;
}

/**
 * Server-to-server authentication, once, before any federation handler (docs/protocol.md): checks
 * `Authorization: Parley …` (its form, the destination, the signed time against
 * `federation.request_time_window_ms`), only then reads the JSON body (capped) and checks the
 * signature under the origin's key fetched through the key store; refuses with 401 and a code
 * naming the failure.
 */
export function requireServer(fed: FederationContext, maxBytes: number, onInbound: (origin: string) => void) {
  return async (ctx: AppContext, next: Next): Promise<void> => {
    // An admin's domain block refuses the server before its key is fetched (no outbound call).
    const claimed = /origin="([^"]{1,255})"/.exec(ctx.get('authorization'))?.[1];
    const blocked = claimed === undefined ? undefined : fed.refuse(claimed);
    if (blocked) throw new ParleyError(403, 'PARLEY_FORBIDDEN', blocked);
    // The checks that need no body and no key come first: a request without a valid header,
    // for another server, or replayed outside the time window costs neither a body nor a fetch.
    const parsed = parseAuthorization(ctx.get('authorization'));
    const timing = { now: fed.clock.now(), windowMs: fed.config.request_time_window_ms };
    if (!parsed.ok) refuseRequest(ctx, parsed);
    const early = checkAddressAndTime(parsed.auth, fed.serverName, timing);
    if (early) refuseRequest(ctx, early);
    let body: unknown;
    const length = ctx.request.length;
    if ((length !== undefined && length > 0) || ctx.get('transfer-encoding')) {
      if (!ctx.request.is('application/json'))
        throw new ParleyError(415, 'PARLEY_UNSUPPORTED_MEDIA_TYPE', 'federation bodies are application/json');
      const text = await getRawBody(ctx.req, { limit: maxBytes, length, encoding: 'utf-8' });
      try {
        body = JSON.parse(text);
      } catch {
        throw new ParleyError(400, 'PARLEY_BAD_JSON', 'body is not valid JSON');
      }
    }
    // A server without an inbound port names its relay; used only to fetch its key document when it cannot be dialled.
    if (fed.relayHint) fed.relayHint(parsed.auth.origin, ctx.get('parley-relay'));
    // A new origin makes us fetch its keys: that fetch is charged to the caller's address
    // (rate limit, negative cache), since nothing about the caller is authenticated yet.
    const requester = ctx.ip || 'unknown';
    const result = await verifyRequest(
      parsed.auth,
      { method: ctx.method, uri: ctx.url, destination: fed.serverName, content: body },
      async (origin, keyId) => fed.keyStore.getKey(origin, keyId, { requester }),
      timing,
    );
    if (!result.ok) refuseRequest(ctx, result);
    const refused = fed.refuse(result.origin);
    if (refused) throw new ParleyError(403, 'PARLEY_FORBIDDEN', refused);
    (ctx.state as unknown as { fed: FederationState }).fed = { origin: result.origin, body };
    ctx.state.log = ctx.state.log.child({ origin: result.origin });
    onInbound(result.origin);
    await next();
  };
}

function refuseRequest(ctx: AppContext, failure: AuthFailure): never {
  ctx.state.log.warn({ code: failure.code, reason: failure.reason }, 'federation request refused');
  throw new ParleyError(401, failure.code as never, failure.reason);
}

export function fedState(ctx: AppContext): FederationState {
  const state = (ctx.state as unknown as { fed?: FederationState }).fed;
  if (!state) throw new Error('federation handler mounted without requireServer');
  return state;
}
