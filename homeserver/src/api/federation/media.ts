import Router from '@koa/router';
import type { FederationContext } from '../../federation/setup.js';
import type { AppContext, AppState } from '../../http/context.js';
import { requireServer } from '../../http/middleware/federation-auth.js';
import type { MediaService } from '../../services/media.js';
import { mediaIdParam, setMediaHeaders } from '../client/media.js';

export function mediaRoutes(fed: FederationContext, media: MediaService, onInbound: (origin: string) => void): Router<AppState> {
  const router = new Router<AppState>({ prefix: '/federation/v1' });

  // GET /federation/v1/media/:mediaId — media uploaded here (never a copy we cached from
  // elsewhere), whole, with the same headers as a client download.
  router.get('/media/:mediaId', requireServer(fed, 0, onInbound), async (ctx: AppContext) => {
    const row = await media.getLocal(mediaIdParam(ctx));
    ctx.body = await media.open(row);
    setMediaHeaders(ctx, row);
    ctx.remove('Accept-Ranges'); // always the whole file here
    ctx.length = row.size;
  });

  return router;
}
