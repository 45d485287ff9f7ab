import Router from '@koa/router';
import type { AppContext, AppState } from '../../http/context.js';
import { requireAuth } from '../../http/middleware/auth.js';
import type { Services } from '../../services/index.js';

/**
 * GET /api/v1/directory/servers — servers known from bootstrap lists, for the web client's
 * server browser (each one's public rooms come from GET /api/v1/directory/rooms?server=).
 * Only servers that announced themselves are ever in the list.
 */
export function serverDirectoryRoutes(s: Services): Router<AppState> {
  const router = new Router<AppState>({ prefix: '/api/v1/directory' });
  router.get('/servers', requireAuth(s.sessions), (ctx: AppContext) => {
    const now = s.clock.now();
    const servers = (s.bootstrap?.known() ?? [])
      .filter((e) => e.descriptor.valid_until_ts > now)
      .sort((a, b) => (a.table === b.table ? a.serverName.localeCompare(b.serverName) : a.table === 'tried' ? -1 : 1))
      .slice(0, 500)
      .map((e) => ({ server_name: e.serverName, capabilities: e.descriptor.capabilities, verified_contact: e.table === 'tried' }));
    ctx.body = { servers };
  });
  return router;
}
