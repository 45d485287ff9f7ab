import cors from '@koa/cors';
import Koa from 'koa';
import { adminBootstrapRoutes } from '../api/admin/bootstrap.js';
import { adminFederationRoutes } from '../api/admin/federation.js';
import { adminMailboxRoutes } from '../api/admin/mailbox.js';
import { adminMediaRoutes } from '../api/admin/media.js';
import { adminRelayRoutes } from '../api/admin/relay.js';
import { adminReportRoutes } from '../api/admin/reports.js';
import { adminRoomRoutes } from '../api/admin/rooms.js';
import { adminServerRoutes } from '../api/admin/server.js';
import { adminUpdateRoutes } from '../api/admin/updates.js';
import { adminUserRoutes } from '../api/admin/users.js';
import { accountRoutes } from '../api/client/account.js';
import { authRoutes } from '../api/client/auth.js';
import { deviceRoutes } from '../api/client/devices.js';
import { directoryRoutes } from '../api/client/directory.js';
import { keyRoutes } from '../api/client/keys.js';
import { mailboxRoutes } from '../api/client/mailbox.js';
import { mediaRoutes } from '../api/client/media.js';
import { profileRoutes } from '../api/client/profile.js';
import { reportRoutes } from '../api/client/reports.js';
import { roomRoutes } from '../api/client/rooms.js';
import { serverDirectoryRoutes } from '../api/client/servers.js';
import { streamRoutes } from '../api/client/stream.js';
import { updateRoutes } from '../api/client/updates.js';
import { opsRoutes } from '../api/ops.js';
import { ParleyError } from '../errors.js';
import type { Metrics } from '../metrics.js';
import type { Services } from '../services/index.js';
import type { AppContext, AppState } from './context.js';
import { errorHandler } from './middleware/errors.js';
import { requestContext } from './middleware/request-context.js';
import { defaultClientDir, serveClient } from './static.js';
import { serveAdmin } from './static-admin.js';

export function createApp(s: Services, metrics: Metrics): Koa<AppState> {
  // Koa keeps only the last `maxIpsCount` X-Forwarded-For entries, so ctx.ip is the address
  // our own outermost proxy appended, not a leftmost entry the client forged (issue 10, L3).
  const app = new Koa<AppState>({ proxy: s.config.http.trust_proxy, maxIpsCount: s.config.http.trusted_proxy_hops });
  // Koa's default handler prints stack traces; ours already logged it with the request ID.
  app.silent = true;
  app.on('error', () => {});

  app.use(requestContext(s.log, metrics));
  app.use(errorHandler);
  app.use(async (ctx: AppContext, next) => {
    await next();
    // Koa leaves 404 when nothing answered; routers' allowedMethods turn known paths into 405.
    if (ctx.status === 404 && ctx.body === undefined) {
      throw new ParleyError(404, 'PARLEY_NOT_FOUND', `no endpoint ${ctx.method} ${ctx.path}`);
    }
  });
  // Bearer tokens, never cookies: any origin may call the API (web clients of other servers).
  app.use(
    cors({
      origin: '*',
      allowHeaders: ['Authorization', 'Content-Type', 'X-Request-Id'],
      exposeHeaders: ['Retry-After', 'X-Request-Id', 'Content-Disposition', 'Content-Range'],
      maxAge: 600,
    }),
  );
  app.use(async (ctx: AppContext, next) => {
    ctx.set('X-Content-Type-Options', 'nosniff');
    ctx.set('Referrer-Policy', 'no-referrer');
    ctx.set('Cache-Control', 'no-store');
    await next();
  });

  for (const router of [
    opsRoutes(s, metrics),
    authRoutes(s),
    accountRoutes(s),
    deviceRoutes(s),
    keyRoutes(s),
    profileRoutes(s),
    roomRoutes(s),
    directoryRoutes(s),
    mediaRoutes(s),
    mailboxRoutes(s),
    streamRoutes(s),
    adminFederationRoutes(s),
    adminBootstrapRoutes(s),
    adminUpdateRoutes(s),
    updateRoutes(s),
    serverDirectoryRoutes(s),
    reportRoutes(s),
    adminUserRoutes(s),
    adminRoomRoutes(s),
    adminReportRoutes(s),
    adminMediaRoutes(s),
    adminServerRoutes(s),
    adminMailboxRoutes(s),
    adminRelayRoutes(s),
  ]) {
    app.use(router.routes());
    app.use(router.allowedMethods({ throw: true }));
  }
  app.use(serveAdmin());
  app.use(serveClient(() => s.updates.activeClientDir() ?? defaultClientDir()));
  return app;
}
