import Router from '@koa/router';
import { badRequest, notFound } from '../../errors.js';
import type { AppContext, AppState } from '../../http/context.js';
import { queryInt, queryString } from '../../http/params.js';
import { describeSettings } from '../../services/admin/settings.js';
import type { Services } from '../../services/index.js';
import { adminOnly } from './guard.js';

const JOB_ID = /^[0-9a-f-]{36}$/;
const ACTION = /^[a-z_.]{1,64}$/;

/** The console's read-only pages: dashboard, settings, audit log, jobs. */
export function adminServerRoutes(s: Services): Router<AppState> {
  const router = new Router<AppState>({ prefix: '/api/v1/admin' });
  const admin = adminOnly(s);
  const a = s.admin;

  // GET /api/v1/admin/dashboard?days=30
  router.get('/dashboard', admin, async (ctx: AppContext) => {
    const days = queryInt(ctx, 'days', 30, 1, 365);
    const [stats, reports] = await Promise.all([a.stats.dashboard(days), a.reports.figures()]);
    ctx.body = { ...stats, reports, server_name: s.config.server_name };
  });

  // GET /api/v1/admin/settings — values with their source; secrets hidden
  router.get('/settings', admin, (ctx: AppContext) => {
    ctx.body = describeSettings(s.config);
  });

  // GET /api/v1/admin/audit?actor=&action=&target=&since=&until=&before=&limit=
  router.get('/audit', admin, async (ctx: AppContext) => {
    const actor = queryString(ctx, 'actor', 255) || undefined;
    const action = queryString(ctx, 'action', 64) || undefined;
    if (action !== undefined && !ACTION.test(action))
      throw badRequest('PARLEY_INVALID_PARAM', 'query parameter action must look like user.deactivate', 'action');
    const target = queryString(ctx, 'target', 512) || undefined;
    const opt = (name: string) => (ctx.query[name] === undefined ? undefined : queryInt(ctx, name, 0, 0, Number.MAX_SAFE_INTEGER));
    ctx.body = {
      entries: await a.audit.list({
        ...(actor ? { actor } : {}),
        ...(action ? { action } : {}),
        ...(target ? { target } : {}),
        ...(opt('since') !== undefined ? { since: opt('since') } : {}),
        ...(opt('until') !== undefined ? { until: opt('until') } : {}),
        ...(opt('before') !== undefined ? { before: opt('before') } : {}),
        limit: queryInt(ctx, 'limit', 100, 1, 1000),
      }),
    };
  });

  // GET /api/v1/admin/jobs
  router.get('/jobs', admin, async (ctx: AppContext) => {
    ctx.body = { jobs: await a.jobs.recent(queryInt(ctx, 'limit', 20, 1, 200)) };
  });

  // GET /api/v1/admin/jobs/:id
  router.get('/jobs/:id', admin, async (ctx: AppContext) => {
    const id = String(ctx.params.id ?? '');
    if (!JOB_ID.test(id)) throw badRequest('PARLEY_INVALID_PARAM', 'id in the path is not a job ID', 'id');
    const job = await a.jobs.find(id);
    if (!job) throw notFound(`no job ${id}`);
    ctx.body = job;
  });

  return router;
}
