import Router from '@koa/router';
import {
  AdminCreateRegistrationTokenRequest,
  AdminCreateUserRequest,
  AdminDeactivateRequest,
  AdminResetPasswordRequest,
  AdminSetAdminRequest,
} from '@parley/schemas';
import { badRequest, notFound } from '../../errors.js';
import type { AppContext, AppState } from '../../http/context.js';
import { readBody } from '../../http/middleware/body.js';
import { queryInt, queryString, userIdValue } from '../../http/params.js';
import type { Services } from '../../services/index.js';
import { mintRegistrationToken } from '../../services/registration.js';
import { actorOf, adminOnly, queryChoice } from './guard.js';

const TOKEN_RE = /^[A-Za-z0-9_-]{1,64}$/;

/** Users and registration tokens (admin/README.md). Every change lands in the audit log. */
export function adminUserRoutes(s: Services): Router<AppState> {
  const router = new Router<AppState>({ prefix: '/api/v1/admin' });
  const admin = adminOnly(s);
  const max = s.config.http.max_json_body_bytes;
  const a = s.admin;
  const userParam = (ctx: AppContext) => userIdValue(ctx.params.userId, 'userId');

  // GET /api/v1/admin/users?q=&filter=&limit=&offset=
  router.get('/users', admin, async (ctx: AppContext) => {
    const q = queryString(ctx, 'q', 255);
    const filter = queryChoice(ctx, 'filter', ['all', 'admins', 'deactivated'] as const, 'all');
    ctx.body = await a.users.search(q, queryInt(ctx, 'limit', 50, 1, 500), queryInt(ctx, 'offset', 0, 0, 1_000_000), filter);
  });

  // POST /api/v1/admin/users
  router.post('/users', admin, async (ctx: AppContext) => {
    const body = await readBody(ctx, AdminCreateUserRequest, max);
    const created = await a.users.create(body);
    await a.audit.record(actorOf(ctx), 'user.create', created.user_id, { admin: body.admin === true, password_generated: !body.password });
    ctx.status = 201;
    ctx.body = created;
  });

  // GET /api/v1/admin/users/:userId — the account, its sessions, rooms and media
  router.get('/users/:userId', admin, async (ctx: AppContext) => {
    ctx.body = await a.users.details(userParam(ctx));
  });

  // POST /api/v1/admin/users/:userId/deactivate
  router.post('/users/:userId/deactivate', admin, async (ctx: AppContext) => {
    const userId = userParam(ctx);
    const body = await readBody(ctx, AdminDeactivateRequest, max);
    const result = await a.users.deactivate(userId, actorOf(ctx).userId, body.leave_rooms !== false);
    await a.audit.record(actorOf(ctx), 'user.deactivate', userId, { reason: body.reason ?? null, job: result.job?.id ?? null });
    ctx.body = result;
  });

  // POST /api/v1/admin/users/:userId/reactivate
  router.post('/users/:userId/reactivate', admin, async (ctx: AppContext) => {
    const userId = userParam(ctx);
    await a.users.reactivate(userId);
    await a.audit.record(actorOf(ctx), 'user.reactivate', userId);
    ctx.body = {};
  });

  // POST /api/v1/admin/users/:userId/password — answers a generated password when none is given
  router.post('/users/:userId/password', admin, async (ctx: AppContext) => {
    const userId = userParam(ctx);
    const body = await readBody(ctx, AdminResetPasswordRequest, max);
    const logout = body.logout_devices !== false;
    ctx.body = await a.users.resetPassword(userId, body.password, logout);
    await a.audit.record(actorOf(ctx), 'user.reset_password', userId, { logout_devices: logout, generated: !body.password });
  });

  // PUT /api/v1/admin/users/:userId/admin
  router.put('/users/:userId/admin', admin, async (ctx: AppContext) => {
    const userId = userParam(ctx);
    const body = await readBody(ctx, AdminSetAdminRequest, max);
    await a.users.setAdmin(userId, body.admin, actorOf(ctx).userId);
    await a.audit.record(actorOf(ctx), body.admin ? 'user.admin_grant' : 'user.admin_revoke', userId);
    ctx.body = {};
  });

  // DELETE /api/v1/admin/users/:userId/sessions — sign out every device
  router.delete('/users/:userId/sessions', admin, async (ctx: AppContext) => {
    const userId = userParam(ctx);
    await a.users.endSessions(userId);
    await a.audit.record(actorOf(ctx), 'user.end_sessions', userId);
    ctx.body = {};
  });

  // GET /api/v1/admin/registration-tokens
  router.get('/registration-tokens', admin, async (ctx: AppContext) => {
    ctx.body = { registration_mode: s.config.registration.mode, tokens: await s.registrationTokens.list() };
  });

  // POST /api/v1/admin/registration-tokens
  router.post('/registration-tokens', admin, async (ctx: AppContext) => {
    const body = await readBody(ctx, AdminCreateRegistrationTokenRequest, max);
    const row = await mintRegistrationToken(s.registrationTokens, s.clock, body.uses_allowed ?? null, body.expires_in_ms ?? null);
    // The token itself is a secret: the log says one was made, not which.
    await a.audit.record(actorOf(ctx), 'registration_token.create', `${row.token.slice(0, 4)}…`, {
      uses_allowed: row.uses_allowed,
      expires_ts: row.expires_ts,
    });
    ctx.status = 201;
    ctx.body = row;
  });

  // DELETE /api/v1/admin/registration-tokens/:token
  router.delete('/registration-tokens/:token', admin, async (ctx: AppContext) => {
    const token = String(ctx.params.token ?? '');
    if (!TOKEN_RE.test(token)) throw badRequest('PARLEY_INVALID_PARAM', 'token in the path is not a registration token', 'token');
    if (!(await s.registrationTokens.delete(token))) throw notFound('no such registration token');
    await a.audit.record(actorOf(ctx), 'registration_token.delete', `${token.slice(0, 4)}…`);
    ctx.body = {};
  });

  return router;
}
