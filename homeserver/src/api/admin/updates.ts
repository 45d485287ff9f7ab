import Router from '@koa/router';
import { AdminClientBundleRequest } from '@parley/schemas';
import { badRequest } from '../../errors.js';
import type { AppContext, AppState } from '../../http/context.js';
import { readBody } from '../../http/middleware/body.js';
import type { Services } from '../../services/index.js';
import { UpdateError } from '../../updates/service.js';
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
    const ok = s.updates?.checks ? await s.updates.check() : false;
    await s.admin.audit.record(actorOf(ctx), 'updates.check', null, { ok });
    ctx.body = s.updates ? { ok, ...(await s.updates.status()) } : { ok: false, mirror: false, release: null };
  });
  // PUT /api/v1/admin/updates/client — serve the web client from a verified release file, now.
  router.put('/client', admin, async (ctx: AppContext) => {
    const body = await readBody(ctx, AdminClientBundleRequest, 4096);
    try {
      const active = await s.updates.activateClient(body.path);
      await s.admin.audit.record(actorOf(ctx), 'updates.client_switch', body.path, { sha256: active.sha256 });
      ctx.body = { path: body.path, sha256: active.sha256 };
    } catch (err) {
      if (err instanceof UpdateError) throw badRequest('PARLEY_INVALID_PARAM', err.message, 'path');
      throw err;
    }
  });

  // DELETE /api/v1/admin/updates/client — back to the web client built with this server.
  router.delete('/client', admin, async (ctx: AppContext) => {
    await s.updates.deactivateClient();
    await s.admin.audit.record(actorOf(ctx), 'updates.client_builtin', null);
    ctx.body = { client_bundle: null };
  });
  return router;
}
