import Router from '@koa/router';
import { AdminAssignReportRequest, AdminResolveReportRequest } from '@parley/schemas';
import type { AppContext, AppState } from '../../http/context.js';
import { readBody } from '../../http/middleware/body.js';
import { queryInt } from '../../http/params.js';
import type { Services } from '../../services/index.js';
import { actorOf, adminOnly, idParam, queryChoice } from './guard.js';

/** The report queue: list, assign, resolve, and time-to-resolve figures. */
export function adminReportRoutes(s: Services): Router<AppState> {
  const router = new Router<AppState>({ prefix: '/api/v1/admin/reports' });
  const admin = adminOnly(s);
  const max = s.config.http.max_json_body_bytes;
  const a = s.admin;

  // GET /api/v1/admin/reports?state=open|resolved|all&limit=&before=
  router.get('/', admin, async (ctx: AppContext) => {
    const state = queryChoice(ctx, 'state', ['open', 'resolved', 'all'] as const, 'open');
    const before = ctx.query.before === undefined ? undefined : queryInt(ctx, 'before', 0, 1, Number.MAX_SAFE_INTEGER);
    const [reports, figures] = await Promise.all([a.reports.list(state, queryInt(ctx, 'limit', 50, 1, 500), before), a.reports.figures()]);
    ctx.body = { reports, figures };
  });

  // GET /api/v1/admin/reports/:id
  router.get('/:id', admin, async (ctx: AppContext) => {
    ctx.body = await a.reports.get(idParam(ctx, 'id'));
  });

  // PUT /api/v1/admin/reports/:id/assign
  router.put('/:id/assign', admin, async (ctx: AppContext) => {
    const id = idParam(ctx, 'id');
    const body = await readBody(ctx, AdminAssignReportRequest, max);
    ctx.body = await a.reports.assign(id, body.assignee);
    await a.audit.record(actorOf(ctx), 'report.assign', String(id), { assignee: body.assignee });
  });

  // POST /api/v1/admin/reports/:id/resolve
  router.post('/:id/resolve', admin, async (ctx: AppContext) => {
    const id = idParam(ctx, 'id');
    const body = await readBody(ctx, AdminResolveReportRequest, max);
    ctx.body = await a.reports.resolve(id, actorOf(ctx).userId, body.resolution);
    await a.audit.record(actorOf(ctx), 'report.resolve', String(id), { resolution: body.resolution });
  });

  return router;
}
