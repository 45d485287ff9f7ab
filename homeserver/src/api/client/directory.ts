import Router from '@koa/router';
import { AliasRequest, isServerName } from '@parley/schemas';
import { badRequest, notFound } from '../../errors.js';
import type { AppContext, AppState } from '../../http/context.js';
import { authOf } from '../../http/context.js';
import { requireAuth } from '../../http/middleware/auth.js';
import { readBody } from '../../http/middleware/body.js';
import { aliasParam, queryInt, queryString } from '../../http/params.js';
import type { Services } from '../../services/index.js';
import { enforce } from '../../services/rate-limit.js';

export function directoryRoutes(s: Services): Router<AppState> {
  const router = new Router<AppState>({ prefix: '/api/v1' });
  const auth = requireAuth(s.sessions);

  // GET /api/v1/directory/rooms?limit=&since=&q=&server=
  // With `server` (another server's name), that server's directory, asked over federation.
  router.get('/directory/rooms', auth, async (ctx: AppContext) => {
    const q = queryString(ctx, 'q', 256) ?? null;
    const server = queryString(ctx, 'server', 255);
    if (server === undefined || server === s.config.server_name) {
      ctx.body = await s.roomViews.directory(queryInt(ctx, 'limit', 50, 1, 500), queryString(ctx, 'since', 16), q);
      return;
    }
    if (!isServerName(server)) throw badRequest('PARLEY_INVALID_PARAM', 'server is not a server name', 'server');
    const remote = s.rooms.remoteDirectory;
    if (!remote) throw notFound(`this server does not federate, so it cannot show the directory of ${server}`);
    // Each query makes this server dial another (and fetch its keys first): charged to the user.
    await enforce(s.rateLimiter, `remote-query:${authOf(ctx).userId}`, s.config.rate_limits.remote_query_per_user);
    // Remote `since` tokens are the other server's, opaque and possibly longer than ours.
    ctx.body = await remote.publicRooms(server, { limit: queryInt(ctx, 'limit', 50, 1, 100), since: queryString(ctx, 'since', 256), q });
  });

  // GET /api/v1/directory/alias/:alias — another server's alias is asked of that server.
  router.get('/directory/alias/:alias', auth, async (ctx: AppContext) => {
    const alias = aliasParam(ctx);
    if (alias.slice(alias.indexOf(':') + 1) === s.config.server_name) {
      ctx.body = await s.roomViews.resolveAlias(alias);
      return;
    }
    const remote = s.rooms.remoteDirectory;
    if (!remote) throw notFound(`${alias} belongs to another server and this server does not federate`);
    await enforce(s.rateLimiter, `remote-query:${authOf(ctx).userId}`, s.config.rate_limits.remote_query_per_user);
    ctx.body = await remote.resolveAlias(alias);
  });

  // PUT /api/v1/directory/alias/:alias
  router.put('/directory/alias/:alias', auth, async (ctx: AppContext) => {
    const alias = aliasParam(ctx);
    const { room_id } = await readBody(ctx, AliasRequest, s.config.http.max_json_body_bytes);
    await s.roomViews.putAlias(authOf(ctx), alias, room_id);
    ctx.body = {};
  });

  // DELETE /api/v1/directory/alias/:alias
  router.delete('/directory/alias/:alias', auth, async (ctx: AppContext) => {
    await s.roomViews.deleteAlias(authOf(ctx), aliasParam(ctx));
    ctx.body = {};
  });

  // GET /api/v1/search?q=&room_id=&limit=&next=
  router.get('/search', auth, async (ctx: AppContext) => {
    const q = queryString(ctx, 'q', 512);
    if (!q?.trim()) throw badRequest('PARLEY_MISSING_PARAM', 'q is required', 'q');
    ctx.body = await s.search.search(
      authOf(ctx),
      q,
      queryString(ctx, 'room_id', 255),
      queryInt(ctx, 'limit', 20, 1, 100),
      queryString(ctx, 'next', 16),
    );
  });

  return router;
}
