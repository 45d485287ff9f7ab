import Koa from 'koa';
import { directoryRoutes } from '../api/federation/directory.js';
import { keyRoutes } from '../api/federation/keys.js';
import { mediaRoutes } from '../api/federation/media.js';
import { queryRoutes } from '../api/federation/query.js';
import { reachabilityRoutes } from '../api/federation/reachability.js';
import { federatedRoomRoutes } from '../api/federation/rooms.js';
import { sendRoutes } from '../api/federation/send.js';
import { userKeyRoutes } from '../api/federation/user-keys.js';
import { ParleyError } from '../errors.js';
import type { AppContext, AppState } from '../http/context.js';
import { errorHandler } from '../http/middleware/errors.js';
import { requestContext } from '../http/middleware/request-context.js';
import type { Metrics } from '../metrics.js';
import { OutboxRepository } from '../repositories/outbox.js';
import type { Services } from '../services/index.js';
import type { FederatedEdus } from './edus.js';
import { RemoteDirectory } from './remote-directory.js';
import type { FederatedRooms } from './rooms.js';
import type { FederationContext } from './setup.js';

/** The federation listener's app (HTTPS, port 8448): `/federation/v1/…` only. */
export function createFederationApp(
  s: Services,
  fed: FederationContext,
  rooms: FederatedRooms,
  metrics: Metrics,
  onInbound: (origin: string) => void,
  edus: FederatedEdus,
): Koa<AppState> {
  // Client requests that reach other servers (remote aliases, directories, media) go out
  // through this server's federation client.
  s.rooms.remoteDirectory = new RemoteDirectory(fed, s.clock, fed.config.query_timeout_ms);
  s.media.federation = fed.client;

  const app = new Koa<AppState>();
  app.silent = true;
  app.on('error', () => {});
  app.use(requestContext(s.log.child({ listener: 'federation' }), metrics));
  app.use(errorHandler);
  app.use(async (ctx: AppContext, next) => {
    await next();
    if (ctx.status === 404 && ctx.body === undefined)
      throw new ParleyError(404, 'PARLEY_NOT_FOUND', `no endpoint ${ctx.method} ${ctx.path}`);
  });
  const routers = [
    keyRoutes(fed, s.identity),
    queryRoutes(fed, { users: s.users, roomViews: s.roomViews }, onInbound),
    directoryRoutes(fed, s.roomViews, onInbound),
    mediaRoutes(fed, s.media, onInbound),
    sendRoutes({
      fed,
      outbox: new OutboxRepository(s.db),
      rooms,
      edus,
      clock: s.clock,
      maxBytes: fed.config.max_transaction_bytes,
      onInbound,
      identity: s.identity,
    }),
    federatedRoomRoutes(fed, rooms, onInbound),
    userKeyRoutes(fed, s.keys, onInbound, s.rateLimiter),
    reachabilityRoutes(fed, onInbound),
  ];
  for (const router of routers) {
    app.use(router.routes());
    app.use(router.allowedMethods({ throw: true }));
  }
  return app;
}
