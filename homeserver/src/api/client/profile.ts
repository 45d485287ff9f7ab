import Router from '@koa/router';
import { ProfileUpdateRequest, parseUserId } from '@parley/schemas';
import { ParleyError } from '../../errors.js';
import type { AppContext, AppState } from '../../http/context.js';
import { authOf } from '../../http/context.js';
import { requireAuth } from '../../http/middleware/auth.js';
import { readBody } from '../../http/middleware/body.js';
import type { Services } from '../../services/index.js';

function userIdParam(ctx: AppContext): string {
  const raw = ctx.params.userId;
  if (!parseUserId(raw))
    throw new ParleyError(400, 'PARLEY_INVALID_PARAM', 'userId in the path is not a valid user ID', { field: 'userId' });
  return raw as string;
}

export function profileRoutes(s: Services): Router<AppState> {
  const router = new Router<AppState>({ prefix: '/api/v1/profile' });
  const auth = requireAuth(s.sessions);

  // GET /api/v1/profile/:userId
  router.get('/:userId', auth, async (ctx: AppContext) => {
    ctx.body = await s.profiles.get(userIdParam(ctx));
  });

  // PUT /api/v1/profile/:userId
  router.put('/:userId', auth, async (ctx: AppContext) => {
    const userId = userIdParam(ctx);
    const body = await readBody(ctx, ProfileUpdateRequest, s.config.http.max_json_body_bytes);
    ctx.body = await s.profiles.update(authOf(ctx), userId, body);
  });

  return router;
}
