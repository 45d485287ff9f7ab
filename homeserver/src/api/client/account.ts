import Router from '@koa/router';
import { PasswordChangeRequest } from '@parley/schemas';
import type { AppContext, AppState } from '../../http/context.js';
import { authOf } from '../../http/context.js';
import { requireAuth } from '../../http/middleware/auth.js';
import { readBody } from '../../http/middleware/body.js';
import type { Services } from '../../services/index.js';
import { enforce } from '../../services/rate-limit.js';

export function accountRoutes(s: Services): Router<AppState> {
  const router = new Router<AppState>({ prefix: '/api/v1/account' });
  const auth = requireAuth(s.sessions);

  // GET /api/v1/account/whoami
  router.get('/whoami', auth, (ctx: AppContext) => {
    const auth = authOf(ctx);
    ctx.body = { user_id: auth.userId, device_id: auth.deviceId, is_admin: auth.isAdmin };
  });

  // POST /api/v1/account/password
  router.post('/password', auth, async (ctx: AppContext) => {
    const auth = authOf(ctx);
    // Guessing old_password is a login attempt: same per-account budget.
    await enforce(s.rateLimiter, `login:user:${auth.userId}`, s.config.rate_limits.login_per_account);
    const body = await readBody(ctx, PasswordChangeRequest, s.config.http.max_json_body_bytes);
    await s.accounts.changePassword(auth, body);
    ctx.body = {};
  });

  return router;
}
