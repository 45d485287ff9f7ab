import Router from '@koa/router';
import { badRequest } from '../../errors.js';
import type { FederatedRooms } from '../../federation/rooms.js';
import type { FederationContext } from '../../federation/setup.js';
import type { AppContext, AppState } from '../../http/context.js';
import { fedState, requireServer } from '../../http/middleware/federation-auth.js';
import { queryInt, roomIdParam } from '../../http/params.js';

export function federatedRoomRoutes(fed: FederationContext, rooms: FederatedRooms, onInbound: (origin: string) => void): Router<AppState> {
  const router = new Router<AppState>({ prefix: '/federation/v1/rooms' });
  const auth = requireServer(fed, 1024 * 1024, onInbound);
  const submitAuth = requireServer(fed, fed.config.max_transaction_bytes, onInbound);
  const eventOf = (ctx: AppContext) => {
    const body = fedState(ctx).body as { event?: unknown } | undefined;
    if (!body || typeof body !== 'object' || !('event' in body)) throw badRequest('PARLEY_MISSING_PARAM', 'event is required', 'event');
    return body.event;
  };

  // POST /federation/v1/rooms/:roomId/join — sequence a remote user's join; answer with the chain.
  router.post('/:roomId/join', auth, async (ctx: AppContext) => {
    const roomId = roomIdParam(ctx);
    const answer = await rooms.hostJoin(fedState(ctx).origin, roomId, eventOf(ctx));
    if (!answer.snapshot) {
      ctx.body = answer;
      return;
    }
    // A snapshot's state comes as JSON text (a large room's): written into the answer as is.
    const { state, anchor } = answer.snapshot;
    ctx.type = 'application/json';
    ctx.body = `{"snapshot":{"state":${state.text},"anchor":${JSON.stringify(anchor)}},"entries":${JSON.stringify(answer.entries)}}`;
  });

  // POST /federation/v1/rooms/:roomId/submit — sequence an origin-signed event ({event}), or
  // up to 100 in order ({events}: answered with one result per event).
  router.post('/:roomId/submit', submitAuth, async (ctx: AppContext) => {
    const roomId = roomIdParam(ctx);
    const body = fedState(ctx).body as { events?: unknown } | undefined;
    if (body && typeof body === 'object' && 'events' in body) {
      if (!Array.isArray(body.events)) throw badRequest('PARLEY_INVALID_PARAM', 'events must be an array', 'events');
      ctx.body = { results: await rooms.hostSubmitMany(fedState(ctx).origin, roomId, body.events) };
      return;
    }
    ctx.body = await rooms.hostSubmit(fedState(ctx).origin, roomId, eventOf(ctx));
  });

  // GET /federation/v1/rooms/:roomId/events?from_seq=&limit= — backfill with records.
  router.get('/:roomId/events', auth, async (ctx: AppContext) => {
    const roomId = roomIdParam(ctx);
    const from = queryInt(ctx, 'from_seq', 1, 1, 2 ** 31 - 1);
    const limit = queryInt(ctx, 'limit', 100, 1, 1000);
    ctx.body = { entries: await rooms.chain(roomId, from, limit, fedState(ctx).origin) };
  });

  // GET /federation/v1/rooms/:roomId/state — current state entries (with records) for servers in the room.
  router.get('/:roomId/state', auth, async (ctx: AppContext) => {
    ctx.body = await rooms.currentState(roomIdParam(ctx), fedState(ctx).origin);
  });

  return router;
}
