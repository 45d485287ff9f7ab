import Router from '@koa/router';
import type { AppContext, AppState } from '../../http/context.js';
import type { Services } from '../../services/index.js';
import { actorOf, adminOnly } from './guard.js';

/** Updates as the admin console sees them: the newest verified release and the mirror's state. */
export function adminUpdateRoutes(s: Services): Router<AppState> {
  const router = new Router<AppState>({ prefix: '/api/v1/admin/updates' });
  const admin = adminOnly(s);

  // GET /api/v1/admin/updates
  router.get('/', admin, async (ctx: AppContext) => {
    ctx.body = s.updates ? await s.updates.status() : { mirror: false, release: null };
  });

  // POST /api/v1/admin/updates/check — sync from the upstreams now.
  router.post('/check', admin, async (ctx: AppContext) => {
    const ok = s.updates?.enabled ? await s.updates.check() : false;
    await s.admin.audit.record(actorOf(ctx), 'updates.check', null, { ok });
    ctx.body = s.updates ? { ok, ...(await s.updates.status()) } : { ok: false, mirror: false, release: null };
  });
  return router;
}
