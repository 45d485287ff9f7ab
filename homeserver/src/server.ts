import { mkdir } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { loadOrCreateSigningKey } from '@parley/federation/keys';
import type { Redis } from 'ioredis';
import { updateRoutes } from './api/client/updates.js';
import { bootstrapRoutes } from './api/federation/bootstrap.js';
import type { Config } from './config.js';
import { createDb, type Db, migrateLatest } from './db/database.js';
import type { EmbeddedDatabase } from './db/embedded.js';
import { DeliveryEngine, type Sender } from './delivery/engine.js';
import { ParleyError } from './errors.js';
import { createFederationApp } from './federation/app.js';
import { BootstrapService } from './federation/bootstrap.js';
import { announceReturn } from './federation/catch-up.js';
import { FederatedKeys } from './federation/e2e-keys.js';
import { FederatedEdus } from './federation/edus.js';
import { FederatedRooms } from './federation/rooms.js';
import { createFederation, type FederationContext } from './federation/setup.js';
import { StreamGateway } from './gateway/gateway.js';
import { createApp } from './http/app.js';
import { createLogger, type Logger } from './logger.js';
import { Metrics } from './metrics.js';
import { type RunningRelay, setUpRelay } from './relay/relay-wiring.js';
import { wireStoreAndForward } from './relay/wiring.js';
import { DeviceListRepository } from './repositories/e2e-keys.js';
import { EduRepository } from './repositories/edus.js';
import { OutboxRepository } from './repositories/outbox.js';
import { RemoteInviteRepository } from './repositories/room-extras.js';
import { ServerKeyRepository } from './repositories/server-keys.js';
import { type Clock, systemClock } from './services/clock.js';
import { createServices, type Services } from './services/index.js';
import type { SigningIdentity } from './services/room-log.js';
import { FEDERATION_SCHEME } from './updates/mirror.js';

export interface StartOptions {
  log?: Logger;
  clock?: Clock;
}

export interface RunningHomeserver {
  /** Base URL of the client API, e.g. http://127.0.0.1:8008 */
  url: string;
  /** What a person opens in a browser: http://localhost:<port> when listening on a wildcard or loopback address. */
  openUrl: string;
  port: number;
  config: Config;
  services: Services;
  gateway: StreamGateway;
  federation: RunningFederation | null;
  stop(): Promise<void>;
}

const TOKEN_PURGE_INTERVAL_MS = 3600_000;

/** Storage for commands: the configured database, or the embedded one in the data dir. */
export async function openDatabase(
  config: Config,
  log: Logger,
  options: { adopt: boolean; migrate?: boolean },
): Promise<{ db: Db; embedded: EmbeddedDatabase | null }> {
  await mkdir(config.data_dir, { recursive: true, mode: 0o700 });
  // The embedded Postgres's client code loads only when it is used (its own chunk in the bundle).
  const embedded = config.database.url
    ? null
    : await (await import('./db/embedded.js')).startEmbeddedPostgres(config.data_dir, config.database.embedded_port, log, options);
  const url = config.database.url ?? (embedded as EmbeddedDatabase).url;
  const db = createDb(url, config.database.pool_max, log);
  try {
    const applied = options.migrate === false ? [] : await migrateLatest(db);
    if (applied.length > 0) log.info({ applied }, 'migrations applied');
  } catch (err) {
    await db.destroy().catch(() => {});
    await embedded?.stop().catch(() => {});
    throw err;
  }
  return { db, embedded };
}

export interface RunningFederation {
  /** https://127.0.0.1:<port> of the federation listener. */
  url: string;
  port: number;
  context: FederationContext;
  delivery: DeliveryEngine;
  relay: RunningRelay;
  stop(): Promise<void>;
}

/** The HTTPS federation listener and the delivery engine that drains the outbox. */
async function startFederation(
  config: Config,
  services: Services,
  identity: SigningIdentity,
  metrics: Metrics,
  redis: Redis | null,
  log: Logger,
): Promise<RunningFederation> {
  const context = await createFederation(
    config,
    identity,
    services.clock,
    log,
    (server) => services.admin.domains.refusal(server),
    new ServerKeyRepository(services.db),
  );
  for (const metric of context.metrics) metrics.registry.registerMetric(metric);
  const sender: Sender = async (destination, txn) => {
    await context.client.request({
      destination,
      method: 'PUT',
      path: `/federation/v1/send/${encodeURIComponent(txn.txnId)}`,
      body: { events: txn.events, edus: txn.edus },
    });
  };
  const delivery = new DeliveryEngine(
    new OutboxRepository(services.db),
    sender,
    services.clock,
    Math.random,
    redis,
    {
      ttlMs: config.federation.outbox_ttl_ms,
      concurrency: config.federation.delivery_concurrency,
      sweepMs: 5_000,
      keyPrefix: config.redis.key_prefix,
    },
    log.child({ component: 'delivery' }),
    metrics.registry,
  );
  await delivery.start();
  services.admin.notifyDelivery = (servers) => delivery.notify(servers);
  const onInbound = (origin: string) => {
    delivery.inbound(origin).catch((err) => log.warn({ err: (err as Error).message, origin }, 'inbound retry trigger failed'));
  };
  const outbox = new OutboxRepository(services.db);
  const rooms = new FederatedRooms(
    services.db,
    services.roomRepo,
    services.eventRepo,
    outbox,
    services.roomLog,
    context,
    identity,
    services.clock,
    log.child({ component: 'federated-rooms' }),
    (servers) => delivery.notify(servers),
    config.federation.outbox_ttl_ms,
    new RemoteInviteRepository(services.db),
    services.writer,
  );
  services.roomLog.fanout = (room, batch, trx) => rooms.fanout(room, batch, trx);
  delivery.submitter = (destination, payloads) => rooms.deliverSubmits(destination, payloads);
  services.timeline.olderHistory = async (roomId, fromSeq) => {
    try {
      await rooms.backfillOlder(roomId, fromSeq);
    } catch (err) {
      if (err instanceof ParleyError) throw err;
      throw new ParleyError(
        502,
        'PARLEY_UNAVAILABLE',
        `older history of ${roomId} is on its host, which did not answer: ${(err as Error).message}`,
      );
    }
  };
  services.rooms.remote = rooms;
  const edus = new FederatedEdus({
    db: services.db,
    serverName: config.server_name,
    rooms: services.roomRepo,
    events: services.eventRepo,
    markers: services.markers,
    outbox,
    repo: new EduRepository(services.db),
    writer: services.writer,
    typing: services.typing,
    presence: services.presence,
    toDevice: services.toDevice,
    timeline: services.timeline,
    roomLog: services.roomLog,
    clock: services.clock,
    log: log.child({ component: 'federated-edus' }),
    notify: (servers) => delivery.notify(servers),
    durableTtlMs: config.federation.outbox_ttl_ms,
  });
  edus.attach();
  const e2eKeys = new FederatedKeys({
    fed: context,
    rooms: services.roomRepo,
    lists: new DeviceListRepository(services.db),
    packages: services.keys.packages,
    deviceLists: services.keys.deviceLists,
    clock: services.clock,
    notify: (servers) => delivery.notify(servers),
    ttlMs: config.federation.outbox_ttl_ms,
  });
  e2eKeys.attach();
  edus.deviceLists = (origin, edu) => e2eKeys.receive(origin, edu);
  const app = createFederationApp(services, context, rooms, metrics, onInbound, edus);
  const bootstrap = new BootstrapService({
    config,
    fed: context,
    identity,
    clock: services.clock,
    log: log.child({ component: 'bootstrap' }),
  });
  services.bootstrap = bootstrap;
  // Mirrors of Parley's releases found in the bootstrap list, reached over federation.
  services.updates.mirror.federation = context.client;
  services.updates.discover = () =>
    bootstrap.book.select(4, { capability: 'mirror' }).map((e) => `${FEDERATION_SCHEME}//${e.serverName}/updates`);
  const updatesRouter = updateRoutes(services);
  app.use(updatesRouter.routes());
  const bootstrapRouter = bootstrapRoutes(context, bootstrap, onInbound);
  app.use(bootstrapRouter.routes());
  app.use(bootstrapRouter.allowedMethods({ throw: true }));
  const relay = setUpRelay({
    config,
    fed: context,
    identity,
    app,
    registry: metrics.registry,
    log: log.child({ component: 'relay' }),
    // Reachable again through the relay: servers that backed off meanwhile retry at once.
    onReserved: () => {
      announceReturn({
        rooms: services.roomRepo,
        client: context.client,
        serverName: config.server_name,
        clock: services.clock,
        log,
      }).catch((err) => log.warn({ err: (err as Error).message }, 'catch-up announcement failed'));
    },
  });
  // Store-and-forward: offer transactions to a relay while a destination fails directly; as a relay, hold others'.
  const storeForward = wireStoreAndForward({ config, services, fed: context, delivery, identity, metrics, log });
  const held = storeForward.storeForward;
  if (relay.hub && held) relay.hub.storeAndForward = (origin, _destination, envelope) => held.offer(origin, envelope, origin);
  services.relay = relay;
  // Without an inbound port (federation.listen off) other servers reach us through relay.use.
  let server: https.Server | null = null;
  let port = 0;
  if (config.federation.listen) {
    const listener = https.createServer({ cert: context.tls.certPem, key: context.tls.keyPem, minVersion: 'TLSv1.2' }, app.callback());
    server = listener;
    listener.requestTimeout = config.http.request_timeout_ms;
    listener.headersTimeout = Math.min(config.http.request_timeout_ms, 20_000);
    relay.attach(listener);
    await new Promise<void>((resolve, reject) => {
      listener.once('error', reject);
      listener.listen(config.federation.port, config.federation.host, () => resolve());
    });
    port = (listener.address() as AddressInfo).port;
    log.info({ port, tls_fingerprint: context.tls.fingerprint }, 'federation listener ready');
  } else {
    log.info({ relay: config.relay.use }, 'federation listener off: other servers reach this one through its relay');
  }
  await relay.start();
  // Servers that backed off while we were away hear from us now, not at their next try.
  announceReturn({ rooms: services.roomRepo, client: context.client, serverName: config.server_name, clock: services.clock, log }).catch(
    (err) => log.warn({ err: (err as Error).message }, 'catch-up announcement failed'),
  );
  bootstrap.start().catch((err) => log.warn({ err: (err as Error).message }, 'bootstrap start failed'));
  return {
    url: `https://127.0.0.1:${port}`,
    port,
    context,
    delivery,
    relay,
    stop: async () => {
      await relay.stop();
      services.relay = null;
      if (server) {
        const listener = server;
        const closed = new Promise<void>((resolve) => listener.close(() => resolve()));
        listener.closeIdleConnections();
        await Promise.race([closed, new Promise((r) => setTimeout(r, config.http.shutdown_grace_ms).unref())]);
        listener.closeAllConnections();
      }
      await bootstrap.stop();
      services.bootstrap = null;
      edus.stop();
      e2eKeys.stop();
      storeForward.stop();
      await delivery.stop();
      await context.close();
    },
  };
}

/** docs/protocol.md: BullMQ and the stream need Redis to refuse writes rather than evict keys. */
async function warnUnlessNoEviction(redis: Redis, log: Logger): Promise<void> {
  try {
    const [, policy] = (await redis.config('GET', 'maxmemory-policy')) as [string, string];
    if (policy !== 'noeviction') log.warn({ policy }, 'Redis maxmemory-policy should be noeviction: evicted keys would delay delivery');
  } catch (err) {
    log.warn({ err: (err as Error).message }, 'could not read Redis maxmemory-policy');
  }
}

/** The server's signing key (generated at first start), as the identity that signs events. */
export async function loadIdentity(config: Config): Promise<SigningIdentity> {
  const key = await loadOrCreateSigningKey(path.join(config.data_dir, 'keys'));
  return { serverName: config.server_name, keyId: key.keyId, privateKey: key.privateKey, publicKey: key.publicKey };
}

export async function startHomeserver(config: Config, options: StartOptions = {}): Promise<RunningHomeserver> {
  const started = Date.now();
  const log = options.log ?? createLogger(config.logging.level);
  const { db, embedded } = await openDatabase(config, log, { adopt: true });
  let redis: Redis | null = null;
  if (config.redis.url) {
    // ioredis (and BullMQ, which the delivery engine loads) only when Redis is configured.
    if (config.redis.cluster) {
      const { connectCluster } = await import('./redis-cluster.js');
      // The cluster client answers the same commands; its duplicate() takes a single Redis's options.
      redis = connectCluster(config.redis.url, { keyPrefix: config.redis.key_prefix, maxRetriesPerRequest: 3 }) as unknown as Redis;
    } else {
      const { Redis } = await import('ioredis');
      redis = new Redis(config.redis.url, { keyPrefix: config.redis.key_prefix, maxRetriesPerRequest: 3, enableOfflineQueue: true });
    }
    redis.on('error', (err) => log.warn({ err: err.message }, 'redis error'));
  }
  const identity = await loadIdentity(config);
  if (redis) await warnUnlessNoEviction(redis, log);
  const services = createServices(config, db, redis, options.clock ?? systemClock, log, identity);
  await services.bus.start();
  await services.admin.start();
  services.updates.start();
  services.mailbox.start();
  const metrics = new Metrics(db, services.media, services.mailbox);
  const app = createApp(services, metrics);

  const server = http.createServer(app.callback());
  const gateway = new StreamGateway({
    sessions: services.sessions,
    rooms: services.roomRepo,
    events: services.eventRepo,
    markers: services.markers,
    stream: services.streamRepo,
    bus: services.bus,
    presence: services.presence,
    roomService: services.rooms,
    metrics,
    log,
    settings: {
      heartbeatMs: config.stream.heartbeat_ms,
      identifyTimeoutMs: config.stream.identify_timeout_ms,
      maxBufferedBytes: config.stream.max_buffered_bytes,
      maxSendBodyBytes: config.http.max_json_body_bytes,
      clientIp: { trustProxy: config.http.trust_proxy, proxyHops: config.http.trusted_proxy_hops },
    },
  });
  server.on('upgrade', (req, socket, head) => gateway.handleUpgrade(req, socket, head));

  const federation = config.federation.enabled ? await startFederation(config, services, identity, metrics, redis, log) : null;
  // Node's requestTimeout bounds receiving a whole request body, so uploads set the ceiling;
  // JSON bodies are capped at 64 KiB and arrive long before it.
  server.requestTimeout = Math.max(config.http.request_timeout_ms, config.media.upload_timeout_ms);
  server.headersTimeout = Math.min(config.http.request_timeout_ms, 20_000);
  server.keepAliveTimeout = 5_000;
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(config.http.port, config.http.host, () => resolve());
    });
  } catch (err) {
    await federation?.stop();
    await gateway.close();
    await services.bus.stop();
    redis?.disconnect();
    await db.destroy();
    await embedded?.stop();
    throw err;
  }
  const port = (server.address() as AddressInfo).port;
  const host = config.http.host === '0.0.0.0' || config.http.host === '::' ? '127.0.0.1' : config.http.host;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  // What a person opens: on a wildcard or loopback address that is localhost, the same name
  // the default server_name (`localhost:<port>`) uses, so the log, the sign-in page and user IDs agree.
  const loopback = ['0.0.0.0', '::', '127.0.0.1', '::1', 'localhost'].includes(config.http.host);
  const openUrl = loopback ? `http://localhost:${port}` : url;

  const purge = setInterval(() => {
    services.sessions.purgeExpired().catch((err) => log.warn({ err }, 'token purge failed'));
  }, TOKEN_PURGE_INTERVAL_MS);
  purge.unref();
  const pruneStream = setInterval(() => {
    services.streamRetention.prune().catch((err) => log.warn({ err }, 'stream prune failed'));
  }, services.streamRetention.intervalMs);
  pruneStream.unref();

  log.info(
    { url: openUrl, server_name: config.server_name, embedded_db: embedded !== null, redis: redis !== null, ms: Date.now() - started },
    'parley homeserver listening',
  );

  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      log.info('shutting down');
      clearInterval(purge);
      clearInterval(pruneStream);
      // Streams first: clients are told to resume elsewhere (1001) rather than cut.
      await gateway.close();
      services.typing.stop();
      // Stop accepting, let in-flight requests finish, then cut whatever is left.
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const grace = new Promise<void>((resolve) => setTimeout(resolve, config.http.shutdown_grace_ms).unref());
      await Promise.race([closed, grace]);
      server.closeAllConnections();
      await federation?.stop();
      await services.presence.stop();
      await services.admin.stop();
      services.updates.stop();
      services.mailbox.stop();
      await services.bus.stop();
      if (redis) await redis.quit().catch(() => redis?.disconnect());
      await db.destroy();
      await embedded?.stop();
      log.info('stopped');
    })();
    return stopping;
  };

  return { url, openUrl, port, config, services, gateway, federation, stop };
}
