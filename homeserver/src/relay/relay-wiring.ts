import http, { type IncomingMessage } from 'node:http';
import type https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { SigningKey } from '@parley/federation/keys';
import { decodeBody, encodeBody, publishedRelayLimits, RELAY_PROTOCOL_VERSION } from '@parley/federation/relay';
import type Koa from 'koa';
import type { Registry } from 'prom-client';
import type { Config } from '../config.js';
import type { FederationContext } from '../federation/setup.js';
import type { AppState } from '../http/context.js';
import type { Logger } from '../logger.js';
import { RelayHub } from './relay-hub.js';
import { createRelayMetrics } from './relay-metrics.js';
import { errorResponse, type OwnReservationState, type RelayDispatch, RelayReserver } from './relay-reserve.js';
import { RelayHints, relayRoute } from './relay-route.js';
import { relayForwardRoutes } from './relay-routes.js';

/** What the admin view shows (GET /api/v1/admin/relay). */
export interface RelayStatus {
  /** Serving as a relay: limits and the reservations held here. */
  relay: { limits: Record<string, number>; reservations: ReturnType<RelayHub['list']> } | null;
  /** This server's own reservation (relay.use), when it has one configured. */
  own: OwnReservationState | null;
}

export interface RunningRelay {
  hub: RelayHub | null;
  reserver: RelayReserver | null;
  status(): RelayStatus;
  /** Takes WebSocket upgrades for the relay on the federation listener. */
  attach(server: https.Server): void;
  /** Starts reserving on relay.use (after the listener, if any, is up). */
  start(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Anchor relays on this server (docs/protocol.md, "Anchor relays"): outbound routing through
 * relays always; the relay endpoints when `relay.enabled`; a reservation on `relay.use`, whose
 * carried requests go to the federation app through a loopback-only listener, when set.
 */
export function setUpRelay(options: {
  config: Config;
  fed: FederationContext;
  identity: SigningKey;
  app: Koa<AppState>;
  registry: Registry;
  log: Logger;
  /** Each time our reservation is (re)established: tell the servers we share rooms with to retry us now. */
  onReserved?: () => void;
}): RunningRelay {
  const { config, fed, identity, app, log } = options;
  const metrics = createRelayMetrics(options.registry);
  const { enabled, use, ...limits } = config.relay;
  const hub = enabled ? new RelayHub({ fed, limits, log, metrics }) : null;
  if (hub) {
    const router = relayForwardRoutes(fed, hub, metrics);
    app.use(router.routes());
    app.use(router.allowedMethods({ throw: true }));
  }
  const hints = new RelayHints(() => fed.clock.now());
  fed.relayHint = (origin, relay) => {
    if (relay && fed.keyStore.cachedDocument(origin) === undefined) hints.note(origin, relay);
  };
  fed.client.route = relayRoute({
    fed,
    identity,
    hints,
    local: (destination) =>
      hub?.has(destination)
        ? (envelope) => hub.forward(envelope, { pending: envelope.method === 'GET' && envelope.uri === '/federation/v1/keys' })
        : undefined,
  });
  let reserver: RelayReserver | null = null;
  let local: { server: http.Server; dispatch: RelayDispatch } | null = null;
  // Servers meeting us for the first time learn from our requests where to fetch our key document.
  fed.client.extraHeaders = () => (use !== null && reserver?.advert() ? { 'parley-relay': use } : undefined);
  fed.keyDocumentExtras = () => ({
    ...(reserver?.advert() ? { relay: reserver.advert() } : {}),
    ...(hub ? { capabilities: { relay: publishedRelayLimits(limits) } } : {}),
  });

  return {
    hub,
    get reserver() {
      return reserver;
    },
    status: () => ({
      relay: hub ? { limits: publishedRelayLimits(limits), reservations: hub.list() } : null,
      own: reserver ? reserver.state() : null,
    }),
    attach(server) {
      if (!hub) return;
      server.on('upgrade', (req, socket, head) => {
        if (!hub.handleUpgrade(req, socket, head)) socket.destroy();
      });
    },
    async start() {
      if (use === null) return;
      local = await localDispatch(app, config.http.request_timeout_ms);
      reserver = new RelayReserver({ relay: use, fed, identity, dispatch: local.dispatch, log, metrics, onReserved: options.onReserved });
      reserver.start();
    },
    async stop() {
      await reserver?.stop();
      await hub?.close();
      if (local) {
        const server = local.server;
        server.closeAllConnections();
        await new Promise<void>((resolve) => server.close(() => resolve()));
      }
    },
  };
}

/**
 * The federation app on a loopback-only port with no TLS, reachable from this process alone:
 * a carried request is handled by the very same middleware (authentication first) as a
 * direct one.
 */
async function localDispatch(app: Koa<AppState>, timeoutMs: number): Promise<{ server: http.Server; dispatch: RelayDispatch }> {
  const server = http.createServer(app.callback());
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const dispatch: RelayDispatch = (envelope, maxBodyBytes) =>
    new Promise((resolve, reject) => {
      const body = decodeBody(envelope.body);
      const headers: Record<string, string> = { accept: '*/*' };
      if (envelope.authorization !== undefined) headers.authorization = envelope.authorization;
      if (envelope.content_type !== undefined) headers['content-type'] = envelope.content_type;
      if (body.length > 0) headers['content-length'] = String(body.length);
      const req = http.request({ host: '127.0.0.1', port, method: envelope.method, path: envelope.uri, headers, timeout: timeoutMs });
      req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
      req.on('error', reject);
      req.on('response', (res: IncomingMessage) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > maxBodyBytes) {
            res.destroy();
            resolve(errorResponse(502, 'PARLEY_RELAY_TOO_LARGE', `the answer is larger than the relay carries (${maxBodyBytes} bytes)`));
            return;
          }
          chunks.push(chunk);
        });
        res.on('error', reject);
        res.on('end', () => {
          if (size > maxBodyBytes) return;
          const type = res.headers['content-type'];
          const bytes = Buffer.concat(chunks);
          resolve({
            v: RELAY_PROTOCOL_VERSION,
            status: res.statusCode ?? 502,
            ...(bytes.length > 0
              ? { content_type: typeof type === 'string' ? type : 'application/octet-stream', body: encodeBody(bytes) }
              : {}),
          });
        });
      });
      req.end(body.length > 0 ? body : undefined);
    });
  return { server, dispatch };
}
