import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ParleyClient, RoomsApi } from '@parley/sdk';
import type { Config, DeepPartial } from '../../src/config.js';
import { createLogger } from '../../src/logger.js';
import { type RunningHomeserver, startHomeserver } from '../../src/server.js';
import type { Clock } from '../../src/services/clock.js';
import { freePort } from './net.js';
import { createTestDatabase, type TestDatabase } from './postgres.js';
import { createTestRedis, type TestRedis } from './redis.js';
import { testConfig } from './server.js';

/**
 * One homeserver of a federation harness: its own database, data directory (TLS
 * certificate, signing key), Redis prefix and federation port, all kept across stop/start
 * so a stopped server comes back as the same server.
 */
export interface FedServer {
  readonly name: string;
  readonly database: TestDatabase;
  readonly redis: TestRedis | null;
  /** The running server (throws while stopped). */
  readonly running: RunningHomeserver;
  readonly url: string;
  client(): ParleyClient;
  /** Registers a user and answers with a logged-in client and its rooms API. */
  user(username: string): Promise<{ client: ParleyClient; rooms: RoomsApi; userId: string }>;
  stop(): Promise<void>;
  start(): Promise<void>;
  isRunning(): boolean;
}

export interface Federation {
  servers: FedServer[];
  byName(name: string): FedServer;
  close(): Promise<void>;
}

export interface FederationOptions {
  /** Use Redis (BullMQ delivery, pub/sub) with a prefix per server; default: in-process poller. */
  redis?: boolean;
  /** Per-server config; `statics` is the static map every server gets (name → 127.0.0.1:port). */
  overrides?: (name: string, statics: Record<string, string>) => DeepPartial<Config>;
  clock?: Clock;
}

/**
 * Starts servers `names` (e.g. ['hs1.test', 'hs2.test', 'hs3.test']) that know each other
 * through a static map on loopback, with self-signed TLS and loopback allowlisted.
 */
export async function startFederation(names: string[], options: FederationOptions = {}): Promise<Federation> {
  const ports = new Map<string, number>();
  for (const name of names) ports.set(name, await freePort());
  const statics = Object.fromEntries(names.map((n) => [n, `127.0.0.1:${ports.get(n)}`]));
  const servers: FedServer[] = [];
  const dataDirs: string[] = [];
  for (const name of names) {
    const database = await createTestDatabase();
    const redis = options.redis ? await createTestRedis() : null;
    const dataDir = await mkdtemp(path.join(tmpdir(), `parley-fed-${name}-`));
    const base: DeepPartial<Config> = {
      server_name: name,
      federation: { port: ports.get(name) as number, static_servers: statics },
      ...(redis ? { redis: { url: redis.url, key_prefix: redis.prefix } } : {}),
    };
    const merged = testConfig(database.url, dataDir, mergeShallow(base, options.overrides?.(name, statics) ?? {}));
    let running: RunningHomeserver | null = null;
    const server: FedServer = {
      name,
      database,
      redis,
      get running() {
        if (!running) throw new Error(`${name} is stopped`);
        return running;
      },
      get url() {
        return server.running.url;
      },
      client: () => new ParleyClient({ baseUrl: server.url }),
      async user(username: string) {
        const client = server.client();
        const session = await client.register({ username, password: `${username} password` });
        return { client, rooms: new RoomsApi(client), userId: session.user_id };
      },
      async stop() {
        const r = running;
        running = null;
        await r?.stop();
      },
      async start() {
        if (running) return;
        running = await startHomeserver(merged, {
          log: createLogger(merged.logging.level),
          ...(options.clock ? { clock: options.clock } : {}),
        });
      },
      isRunning: () => running !== null,
    };
    await server.start();
    servers.push(server);
    dataDirs.push(dataDir); // kept for restarts; removed in close()
  }
  return {
    servers,
    byName(name: string) {
      const s = servers.find((x) => x.name === name);
      if (!s) throw new Error(`no server ${name} in this federation`);
      return s;
    },
    async close() {
      for (const s of [...servers].reverse()) await s.stop();
      for (const s of servers) {
        await s.database.drop();
        await s.redis?.cleanup();
      }
      for (const dir of dataDirs) await rm(dir, { recursive: true, force: true });
    },
  };
}

function mergeShallow(base: DeepPartial<Config>, extra: DeepPartial<Config>): DeepPartial<Config> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(extra)) {
    const prev = out[k];
    out[k] = prev && typeof prev === 'object' && v && typeof v === 'object' && !Array.isArray(v) ? { ...prev, ...v } : v;
  }
  return out as DeepPartial<Config>;
}
