import Router from '@koa/router';
import { parseUserId, ROOM_ALIAS_PATTERN } from '@parley/schemas';
import { badRequest, notFound } from '../../errors.js';
import type { FederationContext } from '../../federation/setup.js';
import type { AppContext, AppState } from '../../http/context.js';
import { requireServer } from '../../http/middleware/federation-auth.js';
import { queryString } from '../../http/params.js';
import type { UserRepository } from '../../repositories/users.js';
import type { RoomViews } from '../../services/room-views.js';

const aliasRe = new RegExp(ROOM_ALIAS_PATTERN);

export interface QueryDeps {
  users: UserRepository;
  roomViews: RoomViews;
}

export function queryRoutes(fed: FederationContext, deps: QueryDeps, onInbound: (origin: string) => void): Router<AppState> {
  const router = new Router<AppState>({ prefix: '/federation/v1' });
  const auth = requireServer(fed, 0, onInbound);

  // GET /federation/v1/query/profile?user_id=
  router.get('/query/profile', auth, async (ctx: AppContext) => {
    const userId = queryString(ctx, 'user_id', 255);
    const parsed = parseUserId(userId);
    if (!parsed) throw badRequest('PARLEY_INVALID_PARAM', 'user_id is not a user ID', 'user_id');
    if (parsed.server !== fed.serverName) throw notFound(`${userId} is not a user of this server`);
    const row = await deps.users.findById(userId as string);
    if (!row || row.deactivated) throw notFound(`no user ${userId}`);
    ctx.body = { user_id: row.user_id, displayname: row.displayname, avatar_url: row.avatar_url };
  });

  // GET /federation/v1/query/alias?alias=#name:server — only for aliases of this server.
  router.get('/query/alias', auth, async (ctx: AppContext) => {
    const alias = queryString(ctx, 'alias', 255);
    if (alias === undefined) throw badRequest('PARLEY_MISSING_PARAM', 'alias is required', 'alias');
    if (!aliasRe.test(alias)) throw badRequest('PARLEY_INVALID_PARAM', 'alias is not a room alias (#name:server)', 'alias');
    if (alias.slice(alias.indexOf(':') + 1) !== fed.serverName) throw notFound(`${alias} is not an alias of this server`);
    const { room_id } = await deps.roomViews.resolveAlias(alias);
    const host = room_id.slice(room_id.indexOf(':') + 1);
    ctx.body = { room_id, servers: host === fed.serverName ? [host] : [host, fed.serverName] };
  });

  return router;
}
