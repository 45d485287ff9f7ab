import Router from '@koa/router';
import { EmptyRequest, LoginRequest, RefreshRequest, RegisterRequest } from '@parley/schemas';
import type { AppContext, AppState } from '../../http/context.js';
import { authOf } from '../../http/context.js';
import { requireAuth } from '../../http/middleware/auth.js';
import { readBody } from '../../http/middleware/body.js';
import type { Services } from '../../services/index.js';
import { enforce } from '../../services/rate-limit.js';

export function authRoutes(s: Services): Router<AppState> {
  const router = new Router<AppState>({ prefix: '/api/v1/auth' });
  const limit = s.config.http.max_json_body_bytes;
  const rules = s.config.rate_limits;

  // GET /api/v1/auth/flows
  router.get('/flows', (ctx: AppContext) => {
    ctx.body = { server_name: s.config.server_name, registration: s.accounts.registrationMode };
  });

  // POST /api/v1/auth/register
  router.post('/register', async (ctx: AppContext) => {
    await enforce(s.rateLimiter, `register:ip:${ctx.ip}`, rules.register_per_ip);
    const body = await readBody(ctx, RegisterRequest, limit);
    ctx.body = await s.accounts.register(body);
    ctx.status = 201;
  });

  // POST /api/v1/auth/login
  router.post('/login', async (ctx: AppContext) => {
    await enforce(s.rateLimiter, `login:ip:${ctx.ip}`, rules.login_per_ip);
    const body = await readBody(ctx, LoginRequest, limit);
    const account = s.accounts.localUserId(body.username) ?? body.username.slice(0, 300);
    await enforce(s.rateLimiter, `login:user:${account}`, rules.login_per_account);
    ctx.body = await s.accounts.login(body);
  });

  // POST /api/v1/auth/refresh
  router.post('/refresh', async (ctx: AppContext) => {
    await enforce(s.rateLimiter, `refresh:ip:${ctx.ip}`, rules.refresh_per_ip);
    const body = await readBody(ctx, RefreshRequest, limit);
    ctx.body = await s.sessions.refresh(body.refresh_token);
  });

  // POST /api/v1/auth/logout
  router.post('/logout', requireAuth(s.sessions), async (ctx: AppContext) => {
    await readBody(ctx, EmptyRequest, limit);
    await s.sessions.logout(authOf(ctx));
    ctx.body = {};
  });

  // POST /api/v1/auth/logout/all
  router.post('/logout/all', requireAuth(s.sessions), async (ctx: AppContext) => {
    await readBody(ctx, EmptyRequest, limit);
    await s.sessions.logoutAll(authOf(ctx).userId);
    ctx.body = {};
  });

  return router;
}
