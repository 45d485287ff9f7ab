import Router from '@koa/router';
import { AliasRequest } from '@parley/schemas';
import { badRequest } from '../../errors.js';
import type { AppContext, AppState } from '../../http/context.js';
import { authOf } from '../../http/context.js';
import { requireAuth } from '../../http/middleware/auth.js';
import { readBody } from '../../http/middleware/body.js';
import { aliasParam, queryInt, queryString } from '../../http/params.js';
import type { Services } from '../../services/index.js';

export function directoryRoutes(s: Services): Router<AppState> {
  const router = new Router<AppState>({ prefix: '/api/v1' });
  const auth = requireAuth(s.sessions);

  // GET /api/v1/directory/rooms?limit=&since=&q=
  router.get('/directory/rooms', auth, async (ctx: AppContext) => {
    const q = queryString(ctx, 'q', 256) ?? null;
    ctx.body = await s.roomViews.directory(queryInt(ctx, 'limit', 50, 1, 500), queryString(ctx, 'since', 16), q);
  });

  // GET /api/v1/directory/alias/:alias
  router.get('/directory/alias/:alias', auth, async (ctx: AppContext) => {
    ctx.body = await s.roomViews.resolveAlias(aliasParam(ctx));
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
