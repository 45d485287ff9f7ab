import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ParleyClient } from '@parley/sdk';
import { type Config, type DeepPartial, defaultConfig, mergeConfig, validateConfig } from '../../src/config.js';
import { createLogger } from '../../src/logger.js';
import { type RunningHomeserver, startHomeserver } from '../../src/server.js';
import type { Clock } from '../../src/services/clock.js';
import { createTestDatabase, type TestDatabase } from './postgres.js';

export interface TestServer extends RunningHomeserver {
  database: TestDatabase;
  client(): ParleyClient;
  /** Stops the server and drops its database and data directory. */
  close(): Promise<void>;
}

/** A controllable clock: tests move time instead of sleeping. */
export class ManualClock implements Clock {
  constructor(private ms = Date.now()) {}
  now(): number {
    return this.ms;
  }
  advance(ms: number): void {
    this.ms += ms;
  }
}

export function testConfig(databaseUrl: string, dataDir: string, overrides: DeepPartial<Config> = {}): Config {
  const base = mergeConfig(defaultConfig(), {
    server_name: 'hs1.test',
    data_dir: dataDir,
    http: { host: '127.0.0.1', port: 0, shutdown_grace_ms: 2000 },
    database: { url: databaseUrl, pool_max: 5 },
    // Cheap Argon2 keeps the suite fast; production defaults are tested in passwords tests.
    auth: { argon2: { memory_kib: 8192, iterations: 1, parallelism: 1 } },
    rate_limits: { enabled: false },
    // Federation on a free loopback port; loopback peers are allowed for tests.
    federation: { host: '127.0.0.1', port: 0, allow_private: ['127.0.0.0/8', '::1/128'] },
    logging: { level: process.env.PARLEY_TEST_LOG ?? 'silent' },
  } satisfies DeepPartial<Config>);
  return validateConfig(mergeConfig(base, overrides));
}

export async function startTestServer(overrides: DeepPartial<Config> = {}, clock?: Clock): Promise<TestServer> {
  const database = await createTestDatabase();
  const dataDir = await mkdtemp(path.join(tmpdir(), 'parley-test-data-'));
  const config = testConfig(database.url, dataDir, overrides);
  const server = await startHomeserver(config, { log: createLogger(config.logging.level), ...(clock ? { clock } : {}) });
  return {
    ...server,
    database,
    client: () => new ParleyClient({ baseUrl: server.url }),
    close: async () => {
      await server.stop();
      await database.drop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}
