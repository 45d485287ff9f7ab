import Koa from 'koa';
import { keyRoutes } from '../api/federation/keys.js';
import { queryRoutes } from '../api/federation/query.js';
import { federatedRoomRoutes } from '../api/federation/rooms.js';
import { sendRoutes } from '../api/federation/send.js';
import { ParleyError } from '../errors.js';
import type { AppContext, AppState } from '../http/context.js';
import { errorHandler } from '../http/middleware/errors.js';
import { requestContext } from '../http/middleware/request-context.js';
import type { Metrics } from '../metrics.js';
import { OutboxRepository } from '../repositories/outbox.js';
import type { Services } from '../services/index.js';
import type { FederatedEdus } from './edus.js';
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
    queryRoutes(fed, s.users, onInbound),
    sendRoutes({
      fed,
      outbox: new OutboxRepository(s.db),
      rooms,
      edus,
      clock: s.clock,
      maxBytes: fed.config.max_transaction_bytes,
      onInbound,
    }),
    federatedRoomRoutes(fed, rooms, onInbound),
  ];
  for (const router of routers) {
    app.use(router.routes());
    app.use(router.allowedMethods({ throw: true }));
  }
  return app;
}
