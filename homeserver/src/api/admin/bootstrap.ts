import Router from '@koa/router';
import { AdminBootstrapPinRequest } from '@parley/schemas';
import { badRequest, notFound, ParleyError } from '../../errors.js';
import type { AppContext, AppState } from '../../http/context.js';
import { readBody } from '../../http/middleware/body.js';
import type { Services } from '../../services/index.js';
import { actorOf, adminOnly } from './guard.js';

const SERVER = /^[A-Za-z0-9.:[\]-]{1,255}$/;

function serverParam(ctx: AppContext): string {
  const name = String(ctx.params.server ?? '');
  if (!SERVER.test(name)) throw badRequest('PARLEY_INVALID_PARAM', 'server in the path must be a server name', 'server');
  return name;
}

/** The bootstrap address book as the admin console sees it: see, pin and prune. */
export function adminBootstrapRoutes(s: Services): Router<AppState> {
  const router = new Router<AppState>({ prefix: '/api/v1/admin/bootstrap' });
  const admin = adminOnly(s);
  const service = () => {
    if (!s.bootstrap) throw new ParleyError(503, 'PARLEY_UNAVAILABLE', 'federation is off: there is no bootstrap list');
    return s.bootstrap;
  };

  // GET /api/v1/admin/bootstrap — our descriptor (when announcing) and every known server.
  router.get('/', admin, (ctx: AppContext) => {
    const b = service();
    ctx.body = {
      announce: s.config.bootstrap.announce,
      own: b.ownDescriptor(),
      servers: b.known().map((e) => ({
        server_name: e.serverName,
        capabilities: e.descriptor.capabilities,
        endpoints: e.descriptor.endpoints,
        table: e.table,
        pinned: e.pinned,
        anchor: e.anchor,
        source: e.source,
        group: e.group,
        last_success_ts: e.lastSuccessTs,
        failures: e.failures,
        valid_until_ts: e.descriptor.valid_until_ts,
      })),
    };
  });

  // PUT /api/v1/admin/bootstrap/:server/pin — keep (or stop keeping) an entry whatever happens.
  router.put('/:server/pin', admin, async (ctx: AppContext) => {
    const server = serverParam(ctx);
    const body = await readBody(ctx, AdminBootstrapPinRequest, 1024);
    if (!service().book.pin(server, body.pinned)) throw notFound(`${server} is not in the bootstrap list`);
    await service().saveCache();
    await s.admin.audit.record(actorOf(ctx), body.pinned ? 'bootstrap.pin' : 'bootstrap.unpin', server);
    ctx.body = { server_name: server, pinned: body.pinned };
  });

  // DELETE /api/v1/admin/bootstrap/:server — prune an entry (it comes back only with a descriptor signed after the prune).
  router.delete('/:server', admin, async (ctx: AppContext) => {
    const server = serverParam(ctx);
    if (!(await service().prune(server))) throw notFound(`${server} is not in the bootstrap list`);
    await s.admin.audit.record(actorOf(ctx), 'bootstrap.prune', server);
    ctx.body = { server_name: server, removed: true };
  });

  return router;
}
