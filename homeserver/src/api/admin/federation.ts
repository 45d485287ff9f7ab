import Router from '@koa/router';
import { forbidden, notFound } from '../../errors.js';
import { type AppContext, type AppState, authOf } from '../../http/context.js';
import { requireAuth } from '../../http/middleware/auth.js';
import { OutboxRepository } from '../../repositories/outbox.js';
import type { Services } from '../../services/index.js';

const DESTINATION_NAME = /^[A-Za-z0-9.-]{1,255}(?::\d{1,5})?$/;

/** Federation delivery as the admin console sees it: every destination's state and backlog. */
export function adminFederationRoutes(s: Services): Router<AppState> {
  const router = new Router<AppState>({ prefix: '/api/v1/admin/federation' });
  const outbox = new OutboxRepository(s.db);
  const admin = async (ctx: AppContext, next: () => Promise<unknown>) => {
    if (!authOf(ctx).isAdmin) throw forbidden('server administrators only');
    await next();
  };

  // GET /api/v1/admin/federation/destinations
  router.get('/destinations', requireAuth(s.sessions), admin, async (ctx: AppContext) => {
    ctx.body = { now: s.clock.now(), destinations: await outbox.overview() };
  });

  // POST /api/v1/admin/federation/destinations/:name/retry — forget the backoff; the next sweep (≤ 5 s) drains it.
  router.post('/destinations/:name/retry', requireAuth(s.sessions), admin, async (ctx: AppContext) => {
    const name = String(ctx.params.name ?? '');
    if (!DESTINATION_NAME.test(name)) throw notFound(`no destination ${name.slice(0, 80)}`);
    if (!(await outbox.resetState(name))) throw notFound(`no destination ${name}`);
    ctx.body = {};
  });

  return router;
}
