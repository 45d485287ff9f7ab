import Router from '@koa/router';
import type { AppContext, AppState } from '../../http/context.js';
import type { Services } from '../../services/index.js';
import { adminOnly } from './guard.js';

/** The mailbox as the admin console sees it: limits, usage and refusals, never a queue or a user. */
export function adminMailboxRoutes(s: Services): Router<AppState> {
  const router = new Router<AppState>({ prefix: '/api/v1/admin/mailbox' });
  // GET /api/v1/admin/mailbox — AdminMailboxView (schemas/src/mailbox.ts).
  router.get('/', adminOnly(s), async (ctx: AppContext) => {
    ctx.body = await s.mailbox.adminView();
  });
  return router;
}
