import Router from '@koa/router';
import { parseUserId } from '@parley/schemas';
import { badRequest, notFound } from '../../errors.js';
import type { FederationContext } from '../../federation/setup.js';
import type { AppContext, AppState } from '../../http/context.js';
import { requireServer } from '../../http/middleware/federation-auth.js';
import { queryString } from '../../http/params.js';
import type { UserRepository } from '../../repositories/users.js';

export function queryRoutes(fed: FederationContext, users: UserRepository, onInbound: (origin: string) => void): Router<AppState> {
  const router = new Router<AppState>({ prefix: '/federation/v1' });

  // GET /federation/v1/query/profile?user_id=
  router.get('/query/profile', requireServer(fed, 0, onInbound), async (ctx: AppContext) => {
    const userId = queryString(ctx, 'user_id', 255);
    const parsed = parseUserId(userId);
    if (!parsed) throw badRequest('PARLEY_INVALID_PARAM', 'user_id is not a user ID', 'user_id');
    if (parsed.server !== fed.serverName) throw notFound(`${userId} is not a user of this server`);
    const row = await users.findById(userId as string);
    if (!row || row.deactivated) throw notFound(`no user ${userId}`);
    ctx.body = { user_id: row.user_id, displayname: row.displayname, avatar_url: row.avatar_url };
  });

  return router;
}
