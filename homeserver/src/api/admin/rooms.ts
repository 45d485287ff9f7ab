import Router from '@koa/router';
import { AdminBlockRoomRequest, AdminShutdownRoomRequest } from '@parley/schemas';
import type { AppContext, AppState } from '../../http/context.js';
import { readBody } from '../../http/middleware/body.js';
import { queryInt, queryString, roomIdParam } from '../../http/params.js';
import type { Services } from '../../services/index.js';
import { actorOf, adminOnly } from './guard.js';

/** Rooms (admin/README.md): search, members, state, block, shut down or delete (a job with progress). */
export function adminRoomRoutes(s: Services): Router<AppState> {
  const router = new Router<AppState>({ prefix: '/api/v1/admin/rooms' });
  const admin = adminOnly(s);
  const max = s.config.http.max_json_body_bytes;
  const a = s.admin;

  // GET /api/v1/admin/rooms?q=&limit=&offset=
  router.get('/', admin, async (ctx: AppContext) => {
    ctx.body = await a.rooms.search(
      queryString(ctx, 'q', 255),
      queryInt(ctx, 'limit', 50, 1, 500),
      queryInt(ctx, 'offset', 0, 0, 1_000_000),
    );
  });

  // GET /api/v1/admin/rooms/blocked
  router.get('/blocked', admin, async (ctx: AppContext) => {
    ctx.body = { rooms: await a.rooms.blocked() };
  });

  // GET /api/v1/admin/rooms/:roomId
  router.get('/:roomId', admin, async (ctx: AppContext) => {
    ctx.body = await a.rooms.get(roomIdParam(ctx));
  });

  // GET /api/v1/admin/rooms/:roomId/members
  router.get('/:roomId/members', admin, async (ctx: AppContext) => {
    ctx.body = { members: await a.rooms.members(roomIdParam(ctx)) };
  });

  // GET /api/v1/admin/rooms/:roomId/state
  router.get('/:roomId/state', admin, async (ctx: AppContext) => {
    ctx.body = { state: await a.rooms.state(roomIdParam(ctx)) };
  });

  // PUT /api/v1/admin/rooms/:roomId/block
  router.put('/:roomId/block', admin, async (ctx: AppContext) => {
    const roomId = roomIdParam(ctx);
    const body = await readBody(ctx, AdminBlockRoomRequest, max);
    await a.rooms.setBlocked(roomId, body.blocked, actorOf(ctx).userId, body.reason ?? null);
    await a.audit.record(actorOf(ctx), body.blocked ? 'room.block' : 'room.unblock', roomId, { reason: body.reason ?? null });
    ctx.body = {};
  });

  // POST /api/v1/admin/rooms/:roomId/shutdown — answers the job; poll GET /api/v1/admin/jobs/:id
  router.post('/:roomId/shutdown', admin, async (ctx: AppContext) => {
    const roomId = roomIdParam(ctx);
    const body = await readBody(ctx, AdminShutdownRoomRequest, max);
    const opts = { delete: body.delete === true, block: body.block !== false, reason: body.reason ?? null };
    const job = await a.rooms.shutdown(roomId, opts, actorOf(ctx).userId);
    await a.audit.record(actorOf(ctx), opts.delete ? 'room.delete' : 'room.shutdown', roomId, { ...opts, job: job.id });
    ctx.status = 202;
    ctx.body = { job };
  });

  return router;
}
