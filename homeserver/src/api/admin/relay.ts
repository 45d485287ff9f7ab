import Router from '@koa/router';
import { ParleyError } from '../../errors.js';
import type { AppContext, AppState } from '../../http/context.js';
import type { Services } from '../../services/index.js';
import { adminOnly } from './guard.js';

/**
 * GET /api/v1/admin/relay — anchor relays as the admin sees them (docs/operator-guide.md): when
 * this server is a relay, its limits and the reservations it holds (server, IP, expiry,
 * requests and bytes carried); when it reserves on a relay (relay.use), that reservation's state.
 */
export function adminRelayRoutes(s: Services): Router<AppState> {
  const router = new Router<AppState>({ prefix: '/api/v1/admin/relay' });
  router.get('/', adminOnly(s), (ctx: AppContext) => {
    if (!s.relay) throw new ParleyError(503, 'PARLEY_UNAVAILABLE', 'federation is off: there is no relay state');
    ctx.body = { enabled: s.config.relay.enabled, use: s.config.relay.use, ...s.relay.status() };
  });
  return router;
}
