import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ParleyClient, RoomsApi } from '@parley/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, until } from './support/net.js';
import { createTestDatabase, type TestDatabase } from './support/postgres.js';
import { createTestRedis, type TestRedis } from './support/redis.js';
import { startTestServer, type TestServer } from './support/server.js';

const BIN = fileURLToPath(new URL('../bin/parley.mjs', import.meta.url));

/**
 * kill -9 of the sending server (a `parley serve` process hosting the room, BullMQ on Redis)
 * while it sequences and fans out: every send it acknowledged reaches the other server after
 * it restarts, once, in the host's order.
 */
describe('federation: kill -9 of the sender mid-delivery', () => {
  let db: TestDatabase;
  let redis: TestRedis;
  let dataDir: string;
  let hs1: ChildProcess | null = null;
  let hs2: TestServer;
  let httpPort: number;
  let env: NodeJS.ProcessEnv;

  async function startHs1(): Promise<void> {
    hs1 = spawn(process.execPath, [BIN, 'serve'], { env, stdio: ['ignore', 'ignore', 'inherit'] });
    for (let i = 0; i < 300; i++) {
      try {
        if ((await fetch(`http://127.0.0.1:${httpPort}/health`)).ok) return;
      } catch {
        // starting
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error('hs1 never became healthy');
  }

  beforeAll(async () => {
    db = await createTestDatabase();
    redis = await createTestRedis();
    dataDir = await mkdtemp(path.join(tmpdir(), 'parley-crash-'));
    httpPort = await freePort();
    const [fed1, fed2] = [await freePort(), await freePort()];
    const statics = { 'hs1.test': `127.0.0.1:${fed1}`, 'hs2.test': `127.0.0.1:${fed2}` };
    const configFile = path.join(dataDir, 'parley.yaml');
    // JSON is YAML.
    await writeFile(
      configFile,
      JSON.stringify({
        rate_limits: { enabled: false },
        auth: { argon2: { memory_kib: 8192, iterations: 1, parallelism: 1 } },
        federation: { static_servers: statics, allow_private: ['127.0.0.0/8'] },
      }),
    );
    env = {
      ...process.env,
      DATABASE_URL: db.url,
      REDIS_URL: redis.url,
      PARLEY_REDIS_PREFIX: redis.prefix,
      PARLEY_HTTP_PORT: String(httpPort),
      PARLEY_HTTP_HOST: '127.0.0.1',
      PARLEY_SERVER_NAME: 'hs1.test',
      PARLEY_DATA_DIR: dataDir,
      PARLEY_LOG_LEVEL: 'error',
      PARLEY_FEDERATION_PORT: String(fed1),
      PARLEY_CONFIG: configFile,
    };
    await startHs1();
    hs2 = await startTestServer({ server_name: 'hs2.test', federation: { port: fed2, static_servers: statics } });
  }, 120_000);

  afterAll(async () => {
    if (hs1 && hs1.exitCode === null && hs1.signalCode === null) {
      const exited = new Promise((r) => hs1?.once('exit', r));
      hs1.kill('SIGTERM');
      const timer = setTimeout(() => hs1?.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    }
    await hs2?.close();
    await db?.drop();
    await redis?.cleanup();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('loses nothing it acknowledged', async () => {
    const alice = new ParleyClient({ baseUrl: `http://127.0.0.1:${httpPort}` });
    await alice.register({ username: 'alice', password: 'alice password' });
    const aliceRooms = new RoomsApi(alice);
    const bob = hs2.client();
    await bob.register({ username: 'bob', password: 'bob password' });
    const bobRooms = new RoomsApi(bob);
    const { room_id: roomId } = await aliceRooms.create({ visibility: 'public' });
    await bobRooms.join(roomId);

    const acknowledged: string[] = [];
    let killed = false;
    let next = 0;
    const worker = async () => {
      while (!killed && next < 400) {
        const i = next++;
        try {
          const res = await aliceRooms.sendText(roomId, `crash ${i}`, `crash-${i}`);
          acknowledged.push(res.event_id);
        } catch {
          return; // the server died under this send: not acknowledged, may or may not exist
        }
      }
    };
    const workers = Array.from({ length: 8 }, worker);
    await until(() => acknowledged.length >= 60, 60_000);
    const exited = new Promise((r) => hs1?.once('exit', r));
    hs1?.kill('SIGKILL');
    killed = true;
    await exited;
    await Promise.all(workers);
    expect(acknowledged.length).toBeGreaterThanOrEqual(60);

    await startHs1();
    const onHs1 = async () => (await aliceRooms.messages(roomId, { limit: 1000 })).chunk.map((e) => e.event_id);
    const onHs2 = async () => (await bobRooms.messages(roomId, { limit: 1000 })).chunk.map((e) => e.event_id);
    await until(async () => {
      const held = new Set(await onHs2());
      return acknowledged.every((id) => held.has(id));
    }, 90_000);
    await until(async () => JSON.stringify(await onHs1()) === JSON.stringify(await onHs2()), 60_000);
    const ids = await onHs2();
    expect(new Set(ids).size).toBe(ids.length);

    // SIGTERM stops it for good, Redis connections included (BullMQ leaves its own open).
    const exit = new Promise<number | null>((r) => hs1?.once('exit', (code) => r(code)));
    hs1?.kill('SIGTERM');
    const code = await Promise.race([exit, new Promise<string>((r) => setTimeout(() => r('still running after 15 s'), 15_000))]);
    expect(code).toBe(0);
  }, 240_000);
});
