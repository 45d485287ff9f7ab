import Router from '@koa/router';
import { ParleyError } from '../../errors.js';
import type { FederationContext } from '../../federation/setup.js';
import type { AppContext, AppState } from '../../http/context.js';
import { fedState, requireServer } from '../../http/middleware/federation-auth.js';

const MIN_INTERVAL_MS = 10_000;
const MAX_REMEMBERED = 10_000;

/**
 * POST /federation/v1/reachability — "can you reach me?", for `parley doctor --peer`. The
 * asking server is authenticated (so it is reachable enough for us to have its key), and we
 * then dial its federation address the way delivery would (discovery, SSRF guard, its TLS
 * pin) and fetch its key document. One check per asking server every 10 s.
 */
export function reachabilityRoutes(fed: FederationContext, onInbound: (origin: string) => void): Router<AppState> {
  const router = new Router<AppState>({ prefix: '/federation/v1' });
  const last = new Map<string, number>();

  router.post('/reachability', requireServer(fed, 1024, onInbound), async (ctx: AppContext) => {
    const { origin } = fedState(ctx);
    const now = fed.clock.now();
    const before = last.get(origin);
    if (before !== undefined && now - before < MIN_INTERVAL_MS) {
      ctx.set('Retry-After', String(Math.ceil((MIN_INTERVAL_MS - (now - before)) / 1000)));
      throw new ParleyError(429, 'PARLEY_RATE_LIMITED', 'one reachability check every 10 s');
    }
    if (last.size >= MAX_REMEMBERED) last.delete(last.keys().next().value as string);
    last.set(origin, now);
    try {
      const res = await fed.client.request({
        destination: origin,
        method: 'GET',
        path: '/federation/v1/keys',
        signed: false,
        timeoutMs: 10_000,
        maxBytes: 64 * 1024,
      });
      const named = (res.body as { server_name?: unknown } | null)?.server_name;
      ctx.body = named === origin ? { reachable: true } : { reachable: false, error: `the key document there names ${String(named)}` };
    } catch (err) {
      ctx.body = { reachable: false, error: (err as Error).message };
    }
  });
  return router;
}
