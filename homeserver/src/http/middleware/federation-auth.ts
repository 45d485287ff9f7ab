import { authenticateRequest } from '@parley/federation/transport';
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
 * Server-to-server authentication, once, before any federation handler (DESIGN §5): reads
 * the JSON body (capped), checks `Authorization: Parley …` (destination, then the signed time
 * against `federation.request_time_window_ms`, then the signature under the origin's key
 * fetched through the key store), and refuses with 401 and a code naming the failure.
 */
export function requireServer(fed: FederationContext, maxBytes: number, onInbound: (origin: string) => void) {
  return async (ctx: AppContext, next: Next): Promise<void> => {
    // An admin's domain block refuses the server before its key is fetched (no outbound call).
    const claimed = /origin="([^"]{1,255})"/.exec(ctx.get('authorization'))?.[1];
    const blocked = claimed === undefined ? undefined : fed.refuse(claimed);
    if (blocked) throw new ParleyError(403, 'PARLEY_FORBIDDEN', blocked);
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
    // A new origin makes us fetch its keys: that fetch is charged to the caller's address
    // (rate limit, negative cache), since nothing about the caller is authenticated yet.
    const requester = ctx.ip || 'unknown';
    const result = await authenticateRequest(
      ctx.get('authorization'),
      { method: ctx.method, uri: ctx.url, destination: fed.serverName, content: body },
      async (origin, keyId) => fed.keyStore.getKey(origin, keyId, { requester }),
      { now: fed.clock.now(), windowMs: fed.config.request_time_window_ms },
    );
    if (!result.ok) {
      ctx.state.log.warn({ code: result.code, reason: result.reason }, 'federation request refused');
      throw new ParleyError(401, result.code as never, result.reason);
    }
    const refused = fed.refuse(result.origin);
    if (refused) throw new ParleyError(403, 'PARLEY_FORBIDDEN', refused);
    (ctx.state as unknown as { fed: FederationState }).fed = { origin: result.origin, body };
    ctx.state.log = ctx.state.log.child({ origin: result.origin });
    onInbound(result.origin);
    await next();
  };
}

export function fedState(ctx: AppContext): FederationState {
  const state = (ctx.state as unknown as { fed?: FederationState }).fed;
  if (!state) throw new Error('federation handler mounted without requireServer');
  return state;
}
