import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ParleyClient, RoomsApi } from '@parley/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from './support/net.js';
import { createTestDatabase, type TestDatabase } from './support/postgres.js';
import { createTestRedis, type TestRedis } from './support/redis.js';
import { bodyOf, openStream, type TestStream } from './support/stream-client.js';

const BIN = fileURLToPath(new URL('../bin/parley.mjs', import.meta.url));

/** Two `parley serve` processes of one server name against one Postgres and one Redis. */
describe('several processes, one server', () => {
  let db: TestDatabase;
  let redis: TestRedis;
  let dataDir: string;
  let configFile: string;
  const procs: ChildProcess[] = [];
  const urls: string[] = [];

  async function start(port: number): Promise<ChildProcess> {
    const env = {
      ...process.env,
      DATABASE_URL: db.url,
      REDIS_URL: redis.url,
      PARLEY_REDIS_PREFIX: redis.prefix,
      PARLEY_HTTP_PORT: String(port),
      PARLEY_HTTP_HOST: '127.0.0.1',
      PARLEY_SERVER_NAME: 'cluster.test',
      PARLEY_DATA_DIR: dataDir,
      PARLEY_LOG_LEVEL: 'warn',
      PARLEY_FEDERATION_PORT: '0',
      PARLEY_CONFIG: configFile,
    };
    const child = spawn(process.execPath, [BIN, 'serve'], { env, stdio: ['ignore', 'ignore', 'inherit'] });
    procs.push(child);
    for (let i = 0; i < 300; i++) {
      try {
        if ((await fetch(`http://127.0.0.1:${port}/health`)).ok) return child;
      } catch {
        // not yet
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`process on ${port} never became healthy`);
  }

  beforeAll(async () => {
    db = await createTestDatabase();
    redis = await createTestRedis();
    dataDir = await mkdtemp(path.join(tmpdir(), 'parley-cluster-'));
    configFile = path.join(dataDir, 'parley.yaml');
    await writeFile(configFile, 'rate_limits:\n  enabled: false\n');
    const ports = [await freePort(), await freePort()];
    urls.push(...ports.map((p) => `http://127.0.0.1:${p}`));
    // Migrations run at start; start one first so the second finds them applied.
    await start(ports[0] as number);
    await start(ports[1] as number);
  }, 120_000);

  afterAll(async () => {
    for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 1000));
    await db?.drop();
    await redis?.cleanup();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('frames cross processes; after kill -9 of one, its clients resume on the other with nothing missed', async () => {
    const [A, B] = urls as [string, string];
    const sender = new ParleyClient({ baseUrl: A });
    await sender.register({ username: 'sender', password: 'sender password' });
    const { room_id: roomId } = await new RoomsApi(sender).create({ visibility: 'public', name: 'Cluster' });
    const receivers: Array<{ client: ParleyClient; home: string; stream?: TestStream; got: string[]; since?: number }> = [];
    for (let i = 0; i < 4; i++) {
      const home = i % 2 === 0 ? A : B;
      const client = new ParleyClient({ baseUrl: home });
      await client.register({ username: `r${i}`, password: 'receiver password' });
      await new RoomsApi(client).join(roomId);
      receivers.push({ client, home, got: [] });
    }
    const connect = async (r: (typeof receivers)[number], url: string) => {
      const s = openStream(url, r.client.session?.access_token as string, r.since);
      const ready = await s.ready;
      r.since ??= ready.position;
      s.ws.on('message', () => {
        for (const f of s.frames.splice(0)) {
          r.since = f.position;
          const body = bodyOf(f);
          if (body?.startsWith('cluster ')) r.got.push(body);
        }
      });
      r.stream = s;
    };
    for (const r of receivers) await connect(r, r.home);

    // The sender sends through A; when A dies it retries the same txnId through B.
    const TOTAL = 120;
    const rooms = { A: new RoomsApi(sender), B: new RoomsApi(new ParleyClient({ baseUrl: B, session: sender.session })) };
    let via: 'A' | 'B' = 'A';
    for (let i = 0; i < TOTAL; i++) {
      if (i === 60) {
        procs[0]?.kill('SIGKILL');
        // A's receivers notice the drop and resume on B from their last position.
        for (const r of receivers.filter((x) => x.home === A)) {
          await r.stream?.closed;
          await connect(r, B);
        }
      }
      for (;;) {
        try {
          await rooms[via].sendText(roomId, `cluster ${i}`, `c-${i}`);
          break;
        } catch {
          via = 'B';
        }
      }
    }
    const expected = Array.from({ length: TOTAL }, (_, i) => `cluster ${i}`);
    for (const r of receivers) {
      for (let t = 0; t < 100 && r.got.length < TOTAL; t++) await new Promise((res) => setTimeout(res, 100));
      expect(r.got).toEqual(expected);
    }
    for (const r of receivers) r.stream?.close();
  }, 120_000);

  it('revoking a device on one process closes its stream on the other', async () => {
    const [, B] = urls as [string, string];
    const port = await freePort();
    await start(port);
    const C = `http://127.0.0.1:${port}`;
    const c = new ParleyClient({ baseUrl: B });
    await c.register({ username: 'revokee', password: 'revokee password' });
    const s = openStream(B, c.session?.access_token as string);
    await s.ready;
    // The logout is handled by process C; the revocation reaches B's socket through Redis.
    await new ParleyClient({ baseUrl: C, session: c.session }).logout();
    expect((await s.closed).code).toBe(4003);
  }, 60_000);

  it('security: M2 a refresh on one process ends the old token’s socket and long-poll on the other', async () => {
    // The first process was killed by the first test: the refresh goes to a process of its own.
    const [, B] = urls as [string, string];
    const port = await freePort();
    await start(port);
    const A = `http://127.0.0.1:${port}`;
    const c = new ParleyClient({ baseUrl: B });
    await c.register({ username: 'refresher', password: 'refresher password' });
    const old = c.session?.access_token as string;
    const s = openStream(B, old);
    await s.ready;
    // Own presence (and device list) notes follow the sign-up and the socket: let them pass,
    // so nothing but the revocation ends the poll below.
    await s.waitFor((f) => f.kind === 'presence');
    let since = (await c.request<{ next: number }>('GET', '/api/v1/sync')).next;
    for (let quiet = 0; quiet < 2; ) {
      const res = await c.request<{ next: number; frames: unknown[] }>('GET', `/api/v1/sync?since=${since}&timeout=300`);
      quiet = res.frames.length === 0 ? quiet + 1 : 0;
      since = res.next;
    }
    const poll = fetch(`${B}/api/v1/sync?since=${since}&timeout=25000`, { headers: { authorization: `Bearer ${old}` } });
    await new ParleyClient({ baseUrl: A, session: c.session }).refresh();
    expect((await s.closed).code).toBe(4002);
    expect((await poll).status).toBe(401);
  }, 60_000);

  it('security: a token cached on one process is refused there on the very next request after a revocation on another', async () => {
    const [, B] = urls as [string, string];
    const port = await freePort();
    await start(port);
    const C = `http://127.0.0.1:${port}`;
    const whoami = async (token: string) =>
      (await fetch(`${B}/api/v1/account/whoami`, { headers: { authorization: `Bearer ${token}` } })).status;
    const c = new ParleyClient({ baseUrl: B });
    await c.register({ username: 'cached', password: 'cached password' });
    // Two requests on B: the second is answered from B's token cache.
    const first = c.session?.access_token as string;
    expect(await whoami(first)).toBe(200);
    expect(await whoami(first)).toBe(200);
    const onC = new ParleyClient({ baseUrl: C, session: c.session });
    await onC.refresh();
    expect(await whoami(first)).toBe(401);

    const second = onC.session?.access_token as string;
    expect(second).not.toBe(first);
    expect(await whoami(second)).toBe(200);
    expect(await whoami(second)).toBe(200);
    await onC.logout();
    expect(await whoami(second)).toBe(401);
  }, 60_000);
});
