import Router from '@koa/router';
import { AdminBlocklistSubscribeRequest, AdminDomainImportRequest, AdminDomainPolicyRequest } from '@parley/schemas';
import { badRequest, notFound } from '../../errors.js';
import type { AppContext, AppState } from '../../http/context.js';
import { readBody } from '../../http/middleware/body.js';
import { OutboxRepository } from '../../repositories/outbox.js';
import { parseImport } from '../../services/admin/domain-policy.js';
import type { Services } from '../../services/index.js';
import { actorOf, adminOnly, idParam, queryChoice } from './guard.js';

const DESTINATION_NAME = /^[A-Za-z0-9.-]{1,255}(?::\d{1,5})?$/;
const BATCH = /^(?:manual|import):[0-9a-f-]{36}$|^sub:\d{1,15}$/;
// Imports carry up to 10,000 lines: a larger body cap than other JSON.
const IMPORT_MAX_BYTES = 3 * 1024 * 1024;

/**
 * Federation as the admin console sees it: every destination's delivery state and backlog,
 * domain blocks and allows (by hand, imported, exported) and subscribed signed blocklists.
 */
export function adminFederationRoutes(s: Services): Router<AppState> {
  const router = new Router<AppState>({ prefix: '/api/v1/admin/federation' });
  const outbox = new OutboxRepository(s.db);
  const admin = adminOnly(s);
  const max = s.config.http.max_json_body_bytes;
  const a = s.admin;

  // GET /api/v1/admin/federation/destinations
  router.get('/destinations', admin, async (ctx: AppContext) => {
    const destinations = await outbox.overview();
    ctx.body = {
      now: s.clock.now(),
      destinations: destinations.map((d) => ({ ...d, blocked: a.domains.refusal(d.name) !== undefined })),
    };
  });

  // POST /api/v1/admin/federation/destinations/:name/retry — forget the backoff; the next sweep (≤ 5 s) drains it.
  router.post('/destinations/:name/retry', admin, async (ctx: AppContext) => {
    const name = String(ctx.params.name ?? '');
    if (!DESTINATION_NAME.test(name)) throw badRequest('PARLEY_INVALID_PARAM', 'name in the path is not a server name', 'name');
    if (!(await outbox.resetState(name))) throw notFound(`no destination ${name}`);
    a.notifyDelivery([name]);
    await a.audit.record(actorOf(ctx), 'federation.retry', name);
    ctx.body = {};
  });

  // GET /api/v1/admin/federation/policies
  router.get('/policies', admin, async (ctx: AppContext) => {
    ctx.body = { policies: await a.domains.list(), subscriptions: await a.blocklists.list() };
  });

  // POST /api/v1/admin/federation/policies — one block or allow
  router.post('/policies', admin, async (ctx: AppContext) => {
    const body = await readBody(ctx, AdminDomainPolicyRequest, max);
    const policy = await a.domains.add(body, actorOf(ctx).userId);
    await a.audit.record(actorOf(ctx), `federation.${body.kind}`, policy.domain, { reason: body.reason ?? null, batch: policy.batch });
    ctx.status = 201;
    ctx.body = policy;
  });

  // DELETE /api/v1/admin/federation/policies/:id
  router.delete('/policies/:id', admin, async (ctx: AppContext) => {
    const removed = await a.domains.remove(idParam(ctx, 'id'));
    await a.audit.record(actorOf(ctx), `federation.${removed.kind}_remove`, removed.domain, { batch: removed.batch });
    ctx.body = {};
  });

  // POST /api/v1/admin/federation/policies/undo/:batch — undo one step (an entry, an import, a subscription's entries)
  router.post('/policies/undo/:batch', admin, async (ctx: AppContext) => {
    const batch = String(ctx.params.batch ?? '');
    if (!BATCH.test(batch)) throw badRequest('PARLEY_INVALID_PARAM', 'batch in the path is not a policy batch', 'batch');
    const removed = await a.domains.undoBatch(batch);
    await a.audit.record(actorOf(ctx), 'federation.undo', batch, {
      removed: removed.length,
      domains: removed.slice(0, 50).map((p) => p.domain),
    });
    ctx.body = { removed: removed.length };
  });

  // POST /api/v1/admin/federation/policies/import — a job with progress; its result names the batch to undo
  router.post('/policies/import', admin, async (ctx: AppContext) => {
    const body = await readBody(ctx, AdminDomainImportRequest, IMPORT_MAX_BYTES);
    const entries = parseImport(body.format, body.data);
    if (entries.length === 0) throw badRequest('PARLEY_INVALID_PARAM', 'data: no entries', 'data');
    const actor = actorOf(ctx);
    const job = await a.jobs.start('federation.import', null, actor.userId, { entries, actor });
    await a.audit.record(actor, 'federation.import', null, { format: body.format, entries: entries.length, job: job.id });
    ctx.status = 202;
    ctx.body = { job };
  });

  // GET /api/v1/admin/federation/policies/export?format=csv|json
  router.get('/policies/export', admin, async (ctx: AppContext) => {
    const format = queryChoice(ctx, 'format', ['csv', 'json'] as const, 'json');
    ctx.type = format === 'csv' ? 'text/csv' : 'application/json';
    ctx.set('Content-Disposition', `attachment; filename="domain-policies.${format}"`);
    ctx.body = await a.domains.export(format);
    await a.audit.record(actorOf(ctx), 'federation.export', null, { format });
  });

  // POST /api/v1/admin/federation/subscriptions
  router.post('/subscriptions', admin, async (ctx: AppContext) => {
    const body = await readBody(ctx, AdminBlocklistSubscribeRequest, max);
    const sub = await a.blocklists.subscribe(body, actorOf(ctx).userId);
    await a.audit.record(actorOf(ctx), 'federation.subscribe', body.url, { entries: sub.entries, id: sub.id });
    ctx.status = 201;
    ctx.body = sub;
  });

  // POST /api/v1/admin/federation/subscriptions/:id/refresh
  router.post('/subscriptions/:id/refresh', admin, async (ctx: AppContext) => {
    const sub = await a.blocklists.refresh(idParam(ctx, 'id'));
    await a.audit.record(actorOf(ctx), 'federation.subscription_refresh', sub.url, { entries: sub.entries });
    ctx.body = sub;
  });

  // DELETE /api/v1/admin/federation/subscriptions/:id — unsubscribe and undo its blocks in one step
  router.delete('/subscriptions/:id', admin, async (ctx: AppContext) => {
    const sub = await a.blocklists.unsubscribe(idParam(ctx, 'id'));
    await a.audit.record(actorOf(ctx), 'federation.unsubscribe', sub.url, { entries: sub.entries });
    ctx.body = {};
  });

  return router;
}
