import Router from '@koa/router';
import type { FederationContext } from '../../federation/setup.js';
import type { AppContext, AppState } from '../../http/context.js';
import { requireServer } from '../../http/middleware/federation-auth.js';
import { queryInt, queryString } from '../../http/params.js';
import type { RoomViews } from '../../services/room-views.js';

// Another server proxies its clients' requests here; smaller pages than our own clients get.
const MAX_LIMIT = 100;

export function directoryRoutes(fed: FederationContext, roomViews: RoomViews, onInbound: (origin: string) => void): Router<AppState> {
  const router = new Router<AppState>({ prefix: '/federation/v1' });

  // GET /federation/v1/directory/rooms?limit=&since=&q= — the rooms this server publishes.
  router.get('/directory/rooms', requireServer(fed, 0, onInbound), async (ctx: AppContext) => {
    const limit = queryInt(ctx, 'limit', 50, 1, MAX_LIMIT);
    const q = queryString(ctx, 'q', 256) ?? null;
    const page = await roomViews.directory(limit, queryString(ctx, 'since', 16), q);
    // Only rooms hosted here: a replica of someone else's room is theirs to publish.
    const suffix = `:${fed.serverName}`;
    ctx.body = { ...page, chunk: page.chunk.filter((room) => room.room_id.endsWith(suffix)) };
  });

  return router;
}
