import Router from '@koa/router';
import { CreateRoomRequest, MembershipChangeRequest, ReasonRequest, ReceiptRequest, RedactRequest } from '@parley/schemas';
import { Type } from '@sinclair/typebox';
import { badRequest } from '../../errors.js';
import type { AppContext, AppState } from '../../http/context.js';
import { authOf } from '../../http/context.js';
import { requireAuth } from '../../http/middleware/auth.js';
import { readBody } from '../../http/middleware/body.js';
import {
  eventIdParam,
  eventTypeParam,
  queryInt,
  queryString,
  roomIdParam,
  roomOrAliasParam,
  stateKeyParam,
  txnIdParam,
} from '../../http/params.js';
import type { Services } from '../../services/index.js';
import { enforce } from '../../services/rate-limit.js';
import { MAX_PAGE } from '../../services/timeline.js';

// Event content: any JSON object; size caps and per-type shapes are checked by the service.
const AnyContent = Type.Record(Type.String(), Type.Unknown());

export function roomRoutes(s: Services): Router<AppState> {
  const router = new Router<AppState>({ prefix: '/api/v1/rooms' });
  const auth = requireAuth(s.sessions);
  const limit = s.config.http.max_json_body_bytes;

  // A write to a room hosted by an unreachable server is queued in the outbox: 202 Accepted.
  router.use(async (ctx: AppContext, next) => {
    await next();
    if (ctx.status === 200 && (ctx.body as { queued?: unknown } | undefined)?.queued === true) ctx.status = 202;
  });

  // POST /api/v1/rooms
  router.post('/', auth, async (ctx: AppContext) => {
    ctx.body = await s.rooms.create(authOf(ctx), await readBody(ctx, CreateRoomRequest, limit));
    ctx.status = 201;
  });

  // GET /api/v1/rooms
  router.get('/', auth, async (ctx: AppContext) => {
    ctx.body = { rooms: await s.roomViews.list(authOf(ctx)) };
  });

  // POST /api/v1/rooms/:roomId/join  (roomId may be an alias)
  router.post('/:roomId/join', auth, async (ctx: AppContext) => {
    const target = roomOrAliasParam(ctx);
    await readBody(ctx, ReasonRequest, limit);
    ctx.body = await s.rooms.join(authOf(ctx), target);
  });

  // POST /api/v1/rooms/:roomId/leave
  router.post('/:roomId/leave', auth, async (ctx: AppContext) => {
    const roomId = roomIdParam(ctx);
    const body = await readBody(ctx, ReasonRequest, limit);
    ctx.body = await s.rooms.leave(authOf(ctx), roomId, body.reason);
  });

  // POST /api/v1/rooms/:roomId/{invite,kick,ban,unban}
  for (const action of ['invite', 'kick', 'ban', 'unban'] as const) {
    router.post(`/:roomId/${action}`, auth, async (ctx: AppContext) => {
      const roomId = roomIdParam(ctx);
      const { user_id, reason } = await readBody(ctx, MembershipChangeRequest, limit);
      const a = authOf(ctx);
      if (action === 'invite') ctx.body = await s.rooms.membership(a, roomId, user_id, 'invite', reason);
      else if (action === 'ban') ctx.body = await s.rooms.membership(a, roomId, user_id, 'ban', reason);
      else if (action === 'kick') ctx.body = await s.rooms.kick(a, roomId, user_id, reason);
      else ctx.body = await s.rooms.unban(a, roomId, user_id, reason);
    });
  }

  // GET /api/v1/rooms/:roomId/state
  router.get('/:roomId/state', auth, async (ctx: AppContext) => {
    ctx.body = await s.roomViews.state(authOf(ctx), roomIdParam(ctx));
  });

  // GET /api/v1/rooms/:roomId/state/:type/:stateKey?
  router.get('/:roomId/state/:type{/:stateKey}', auth, async (ctx: AppContext) => {
    ctx.body = await s.roomViews.stateContent(authOf(ctx), roomIdParam(ctx), eventTypeParam(ctx), stateKeyParam(ctx));
  });

  // PUT /api/v1/rooms/:roomId/state/:type/:stateKey?
  router.put('/:roomId/state/:type{/:stateKey}', auth, async (ctx: AppContext) => {
    const roomId = roomIdParam(ctx);
    const type = eventTypeParam(ctx);
    const stateKey = stateKeyParam(ctx);
    const content = await readBody(ctx, AnyContent, limit, 'content.');
    ctx.body = await s.rooms.setState(authOf(ctx), roomId, type, stateKey, content);
  });

  // GET /api/v1/rooms/:roomId/members
  router.get('/:roomId/members', auth, async (ctx: AppContext) => {
    ctx.body = { members: await s.roomViews.members(authOf(ctx), roomIdParam(ctx)) };
  });

  // PUT /api/v1/rooms/:roomId/send/:type/:txnId
  // The stream's `send` (gateway.ts, onSend) writes through the same RoomService.send with the
  // same body cap: a check or rate limit added here belongs there too.
  router.put('/:roomId/send/:type/:txnId', auth, async (ctx: AppContext) => {
    const roomId = roomIdParam(ctx);
    const type = eventTypeParam(ctx);
    const txnId = txnIdParam(ctx);
    const content = await readBody(ctx, AnyContent, limit, 'content.');
    ctx.body = await s.rooms.send(authOf(ctx), roomId, type, txnId, content);
  });

  // PUT /api/v1/rooms/:roomId/redact/:eventId/:txnId
  router.put('/:roomId/redact/:eventId/:txnId', auth, async (ctx: AppContext) => {
    const roomId = roomIdParam(ctx);
    const eventId = eventIdParam(ctx);
    const txnId = txnIdParam(ctx);
    const body = await readBody(ctx, RedactRequest, limit);
    ctx.body = await s.rooms.redact(authOf(ctx), roomId, eventId, txnId, body.reason);
  });

  // GET /api/v1/rooms/:roomId/messages?from=&dir=b|f&limit=
  router.get('/:roomId/messages', auth, async (ctx: AppContext) => {
    const roomId = roomIdParam(ctx);
    const dir = queryString(ctx, 'dir', 1) ?? 'b';
    if (dir !== 'b' && dir !== 'f') throw badRequest('PARLEY_INVALID_PARAM', 'dir must be "b" or "f"', 'dir');
    const count = queryInt(ctx, 'limit', 50, 1, MAX_PAGE);
    ctx.body = await s.timeline.messages(authOf(ctx), roomId, queryString(ctx, 'from', 32), dir, count);
  });

  // GET /api/v1/rooms/:roomId/event/:eventId
  router.get('/:roomId/event/:eventId', auth, async (ctx: AppContext) => {
    ctx.body = await s.timeline.event(authOf(ctx), roomIdParam(ctx), eventIdParam(ctx));
  });

  // GET /api/v1/rooms/:roomId/context/:eventId?limit=
  router.get('/:roomId/context/:eventId', auth, async (ctx: AppContext) => {
    ctx.body = await s.timeline.context(authOf(ctx), roomIdParam(ctx), eventIdParam(ctx), queryInt(ctx, 'limit', 10, 1, 100));
  });

  // GET /api/v1/rooms/:roomId/relations/:eventId?type=replace|reply|thread|annotation
  router.get('/:roomId/relations/:eventId', auth, async (ctx: AppContext) => {
    const relType = queryString(ctx, 'type', 16);
    if (relType !== undefined && !['replace', 'reply', 'thread', 'annotation'].includes(relType)) {
      throw badRequest('PARLEY_INVALID_PARAM', 'type must be replace, reply, thread or annotation', 'type');
    }
    ctx.body = { chunk: await s.timeline.relations(authOf(ctx), roomIdParam(ctx), eventIdParam(ctx), relType) };
  });

  // POST /api/v1/rooms/:roomId/receipt
  router.post('/:roomId/receipt', auth, async (ctx: AppContext) => {
    const roomId = roomIdParam(ctx);
    const body = await readBody(ctx, ReceiptRequest, limit);
    await enforce(s.rateLimiter, `receipt:${authOf(ctx).userId}`, { burst: 30, per_minute: 120 });
    await s.timeline.markRead(authOf(ctx), roomId, body.event_id, body.private === true);
    ctx.body = {};
  });

  // GET /api/v1/rooms/:roomId/hierarchy
  router.get('/:roomId/hierarchy', auth, async (ctx: AppContext) => {
    ctx.body = await s.roomViews.hierarchy(authOf(ctx), roomIdParam(ctx));
  });

  return router;
}
