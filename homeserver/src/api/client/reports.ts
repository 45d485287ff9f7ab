import Router from '@koa/router';
import { ReportRequest } from '@parley/schemas';
import type { AppContext, AppState } from '../../http/context.js';
import { authOf } from '../../http/context.js';
import { requireAuth } from '../../http/middleware/auth.js';
import { readBody } from '../../http/middleware/body.js';
import { eventIdParam, roomIdParam, userIdValue } from '../../http/params.js';
import type { Services } from '../../services/index.js';

/** Users report a message or a user to this server's admins (the console's report queue). */
export function reportRoutes(s: Services): Router<AppState> {
  const router = new Router<AppState>({ prefix: '/api/v1' });
  const auth = requireAuth(s.sessions);
  const max = s.config.http.max_json_body_bytes;

  // POST /api/v1/rooms/:roomId/report/:eventId
  router.post('/rooms/:roomId/report/:eventId', auth, async (ctx: AppContext) => {
    const roomId = roomIdParam(ctx);
    const eventId = eventIdParam(ctx);
    const body = await readBody(ctx, ReportRequest, max);
    const report = await s.admin.reports.reportEvent(authOf(ctx), roomId, eventId, body.reason);
    ctx.body = { report_id: report.id };
  });

  // POST /api/v1/users/:userId/report
  router.post('/users/:userId/report', auth, async (ctx: AppContext) => {
    const userId = userIdValue(ctx.params.userId, 'userId');
    const body = await readBody(ctx, ReportRequest, max);
    const report = await s.admin.reports.reportUser(authOf(ctx), userId, body.reason);
    ctx.body = { report_id: report.id };
  });

  return router;
}
