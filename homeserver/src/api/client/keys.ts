import Router from '@koa/router';
import {
  check,
  DeviceKeysQueryRequest,
  KeyBackupPutRequest,
  KeyClaimRequest,
  KeyUploadRequest,
  MAX_BACKUP_BYTES,
  SignedDeviceList,
  UserId,
} from '@parley/schemas';
import { badRequest, notFound, ParleyError } from '../../errors.js';
import type { AppContext, AppState } from '../../http/context.js';
import { authOf } from '../../http/context.js';
import { requireAuth } from '../../http/middleware/auth.js';
import { readBody } from '../../http/middleware/body.js';
import type { Services } from '../../services/index.js';
import { enforce } from '../../services/rate-limit.js';

// A backup's base64url plus the JSON around it.
const BACKUP_BODY_BYTES = Math.ceil((MAX_BACKUP_BYTES * 4) / 3) + 4096;
// 100 key packages of up to 8 KiB each, as base64url.
const UPLOAD_BODY_BYTES = 1_200_000;
// Each claim uses up other users' one-time packages: a user adding devices to groups claims
// in bursts, a script draining everyone's packages is held to a trickle.
const CLAIM_RULE = { burst: 100, per_minute: 60 };

/** E2E key material (docs/protocol.md): key packages, signed device lists, key backup. All opaque here. */
export function keyRoutes(s: Services): Router<AppState> {
  const router = new Router<AppState>({ prefix: '/api/v1/keys' });
  const auth = requireAuth(s.sessions);
  const limit = s.config.http.max_json_body_bytes;

  // POST /api/v1/keys/upload
  router.post('/upload', auth, async (ctx: AppContext) => {
    const body = await readBody(ctx, KeyUploadRequest, Math.max(limit, UPLOAD_BODY_BYTES));
    ctx.body = await s.keys.packages.upload(authOf(ctx), body);
  });

  // GET /api/v1/keys/count
  router.get('/count', auth, async (ctx: AppContext) => {
    ctx.body = await s.keys.packages.count(authOf(ctx));
  });

  // POST /api/v1/keys/claim
  router.post('/claim', auth, async (ctx: AppContext) => {
    await enforce(s.rateLimiter, `keys-claim:${authOf(ctx).userId}`, CLAIM_RULE);
    const body = await readBody(ctx, KeyClaimRequest, limit);
    ctx.body = await s.keys.packages.claim(body);
  });

  // PUT /api/v1/keys/device_list
  router.put('/device_list', auth, async (ctx: AppContext) => {
    const body = await readBody(ctx, SignedDeviceList, limit);
    ctx.body = await s.keys.deviceLists.put(authOf(ctx), body);
  });

  // Queries naming users of other servers dial out: the same budget as other remote queries.
  const remoteBudget = async (ctx: AppContext, users: string[]) => {
    if (users.some((u) => u.slice(u.indexOf(':') + 1) !== s.config.server_name))
      await enforce(s.rateLimiter, `remote-query:${authOf(ctx).userId}`, s.config.rate_limits.remote_query_per_user);
  };

  // GET /api/v1/keys/device_list/:userId
  router.get('/device_list/:userId', auth, async (ctx: AppContext) => {
    const userId = check(UserId, ctx.params.userId);
    if (!userId.ok) throw badRequest('PARLEY_INVALID_PARAM', 'userId in the path is not a user ID', 'userId');
    await remoteBudget(ctx, [userId.value]);
    const answer = await s.keys.deviceLists.query([userId.value]);
    const found = answer.device_lists[userId.value];
    if (!found) {
      const failure = Object.values(answer.failures ?? {})[0];
      if (failure) throw new ParleyError(502, 'PARLEY_UNAVAILABLE', failure.message);
      throw notFound(`no devices known for ${userId.value}`);
    }
    ctx.body = found;
  });

  // POST /api/v1/keys/query
  router.post('/query', auth, async (ctx: AppContext) => {
    const body = await readBody(ctx, DeviceKeysQueryRequest, limit);
    await remoteBudget(ctx, body.users);
    ctx.body = await s.keys.deviceLists.query(body.users);
  });

  // GET /api/v1/keys/backup
  router.get('/backup', auth, async (ctx: AppContext) => {
    const backup = await s.keys.backup.get(authOf(ctx));
    ctx.set('ETag', backup.etag);
    ctx.body = backup;
  });

  // PUT /api/v1/keys/backup
  router.put('/backup', auth, async (ctx: AppContext) => {
    const body = await readBody(ctx, KeyBackupPutRequest, BACKUP_BODY_BYTES);
    const answer = await s.keys.backup.put(authOf(ctx), body, ctx.get('If-Match') || undefined);
    ctx.set('ETag', answer.etag);
    ctx.body = answer;
  });

  // DELETE /api/v1/keys/backup
  router.delete('/backup', auth, async (ctx: AppContext) => {
    await s.keys.backup.delete(authOf(ctx));
    ctx.status = 204;
  });

  return router;
}
