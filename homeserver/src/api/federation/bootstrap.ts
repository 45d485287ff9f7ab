import Router from '@koa/router';
import { BootstrapAnnounce, check } from '@parley/schemas';
import { badRequest, ParleyError } from '../../errors.js';
import type { BootstrapService } from '../../federation/bootstrap.js';
import type { FederationContext } from '../../federation/setup.js';
import type { AppContext, AppState } from '../../http/context.js';
import { fedState, requireServer } from '../../http/middleware/federation-auth.js';

/** Bootstrap node lists (docs/protocol.md): our descriptor, our list, and pushes from other servers. */
export function bootstrapRoutes(
  fed: FederationContext,
  bootstrap: BootstrapService,
  onInbound: (origin: string) => void,
): Router<AppState> {
  const router = new Router<AppState>({ prefix: '/federation/v1/bootstrap' });

  // GET /federation/v1/bootstrap/descriptor — our signed descriptor; 404 when this server does not announce.
  router.get('/descriptor', (ctx: AppContext) => {
    const own = bootstrap.ownDescriptor();
    if (!own) throw new ParleyError(404, 'PARLEY_NOT_FOUND', 'this server does not announce itself in bootstrap lists');
    ctx.set('Cache-Control', 'public, max-age=300');
    ctx.body = own;
  });

  // GET /federation/v1/bootstrap/list — the descriptors we know (ours first when announcing).
  router.get('/list', requireServer(fed, 0, onInbound), (ctx: AppContext) => {
    ctx.body = { descriptors: bootstrap.list() };
  });

  // POST /federation/v1/bootstrap/announce — descriptors pushed to us, with a hop budget.
  router.post('/announce', requireServer(fed, 1024 * 1024, onInbound), async (ctx: AppContext) => {
    const { origin, body } = fedState(ctx);
    const parsed = check(BootstrapAnnounce, body);
    if (!parsed.ok) throw badRequest(parsed.code, parsed.message, parsed.field);
    const result = await bootstrap.onAnnounce(origin, parsed.value.descriptors, parsed.value.hops);
    // refused: descriptors looked at and refused; over_budget: not looked at, over this peer's
    // budget (bootstrap.announce_per_peer, at most 64 per message). Replays count in neither.
    ctx.body = { accepted: result.accepted, refused: result.refused.length, over_budget: result.overBudget };
  });

  return router;
}
