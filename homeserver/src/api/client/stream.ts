import Router from '@koa/router';
import { PresenceRequest, parseUserId, ToDeviceRequest, TypingRequest } from '@parley/schemas';
import { badRequest } from '../../errors.js';
import type { AppContext, AppState } from '../../http/context.js';
import { authOf } from '../../http/context.js';
import { requireAuth } from '../../http/middleware/auth.js';
import { readBody } from '../../http/middleware/body.js';
import { eventTypeParam, queryInt, queryString, roomIdParam, txnIdParam } from '../../http/params.js';
import type { Services } from '../../services/index.js';
import { enforce } from '../../services/rate-limit.js';

// Typing notices are cheap to send and cheap to abuse: a generous bucket per device. The web
// client sends one "typing" when typing starts (renewed every 20 s) and one "stopped" once the
// draft rests for 4 s, so a fast typist needs a few a minute per room; the burst covers hopping
// between rooms. Per device, so a person's second tab or phone does not eat the first one's budget.
const TYPING_RULE = { burst: 20, per_minute: 60 };
const PRESENCE_RULE = { burst: 10, per_minute: 30 };

export function streamRoutes(s: Services): Router<AppState> {
  const router = new Router<AppState>({ prefix: '/api/v1' });
  const auth = requireAuth(s.sessions);
  const limit = s.config.http.max_json_body_bytes;

  // GET /api/v1/sync?since=&timeout=
  router.get('/sync', auth, async (ctx: AppContext) => {
    const sinceText = queryString(ctx, 'since', 20);
    if (sinceText !== undefined && !/^\d{1,15}$/.test(sinceText))
      throw badRequest('PARLEY_INVALID_PARAM', 'since must be a stream position', 'since');
    const timeout = queryInt(ctx, 'timeout', 0, 0, s.config.stream.long_poll_max_ms);
    const aborted = new AbortController();
    ctx.req.on('close', () => aborted.abort());
    ctx.body = await s.sync.sync(authOf(ctx), sinceText === undefined ? undefined : Number(sinceText), timeout, aborted.signal);
  });

  // PUT /api/v1/rooms/:roomId/typing
  router.put('/rooms/:roomId/typing', auth, async (ctx: AppContext) => {
    const roomId = roomIdParam(ctx);
    const body = await readBody(ctx, TypingRequest, limit);
    const a = authOf(ctx);
    await enforce(s.rateLimiter, `typing:${a.userId}:${a.deviceId}`, TYPING_RULE);
    await s.typing.set(a.userId, roomId, body.typing, body.timeout_ms);
    ctx.body = {};
  });

  // PUT /api/v1/presence
  router.put('/presence', auth, async (ctx: AppContext) => {
    const body = await readBody(ctx, PresenceRequest, limit);
    await enforce(s.rateLimiter, `presence:${authOf(ctx).userId}`, PRESENCE_RULE);
    await s.presence.set(authOf(ctx).userId, body.presence);
    ctx.body = {};
  });

  // GET /api/v1/presence/:userId
  router.get('/presence/:userId', auth, async (ctx: AppContext) => {
    const userId = ctx.params.userId;
    if (!parseUserId(userId)) throw badRequest('PARLEY_INVALID_PARAM', 'userId in the path is not a valid user ID', 'userId');
    ctx.body = { user_id: userId, ...(await s.presence.getFor(authOf(ctx).userId, userId as string)) };
  });

  // PUT /api/v1/send_to_device/:type/:txnId
  router.put('/send_to_device/:type/:txnId', auth, async (ctx: AppContext) => {
    const type = eventTypeParam(ctx);
    const txnId = txnIdParam(ctx);
    const body = await readBody(ctx, ToDeviceRequest, limit);
    await s.toDevice.send(authOf(ctx), type, txnId, body);
    ctx.body = {};
  });

  return router;
}
