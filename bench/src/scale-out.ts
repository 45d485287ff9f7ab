import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { openSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import https from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ParleyClient, RoomsApi, uploadMedia } from '@parley/sdk';
import pg from 'pg';
import WebSocket from 'ws';
// deploy/'s proxy configs as the scale-out test runs them (homeserver/test/scale-out.slow.test.ts).
import { ensureProxies, makeTestCa, startNginx } from '../../homeserver/test/support/proxies.js';
import { pool } from './clients.js';
import {
  benchRedis,
  ensureServerBuilt,
  freePort,
  fromSources,
  PRODUCTION_ENV,
  PRODUCTION_NODE_FLAGS,
  redisDeletePrefix,
  redisPrefix,
} from './server.js';
import { percentiles } from './stats.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BIN = path.join(ROOT, fromSources ? 'homeserver/bin/parley.mjs' : 'homeserver/dist/parley.mjs');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface ScaleOutOptions {
  /** Clients sending at once, each its next message as soon as the last is acknowledged. */
  senders: number;
  /** How long each phase sends. */
  seconds: number;
  /** Stream readers in the room, each checking it gets every message once. */
  readers: number;
  /** Media files (256 KiB each) uploaded before the backup. */
  media: number;
}

/** fetch over node:https trusting the test CA (the bench has no undici of its own). */
function fetchWithCa(ca: string): typeof fetch {
  const agent = new https.Agent({ ca, keepAlive: true, maxSockets: 256 });
  return (async (input: string | URL, init: RequestInit = {}) => {
    const url = new URL(String(input));
    const headers: Record<string, string> = {};
    new Headers(init.headers).forEach((v, k) => {
      headers[k] = v;
    });
    const body = typeof init.body === 'string' ? init.body : init.body ? Buffer.from(init.body as ArrayBuffer) : undefined;
    return new Promise<Response>((resolve, reject) => {
      const req = https.request(url, { method: init.method ?? 'GET', headers, agent }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const h = new Headers();
          for (const [k, v] of Object.entries(res.headers)) if (typeof v === 'string') h.set(k, v);
          const status = res.statusCode ?? 500;
          resolve(new Response(status === 204 ? null : Buffer.concat(chunks), { status, headers: h }));
        });
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(body);
    });
  }) as typeof fetch;
}

/** `parley <args>` from the bundle with the processes' environment; stdout, and the wall time. */
function cli(env: NodeJS.ProcessEnv, args: string[]): Promise<{ stdout: string; ms: number }> {
  const t0 = performance.now();
  return new Promise((resolve, reject) =>
    execFile(process.execPath, [BIN, ...args], { env, cwd: ROOT }, (err, stdout, stderr) =>
      err ? reject(new Error(`parley ${args[0]} failed: ${stderr || err.message}`)) : resolve({ stdout, ms: performance.now() - t0 }),
    ),
  );
}

function cpuSeconds(pid: number | undefined): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return 0;
  }
}

/**
 * bench/README.md scale-out: one server name on one Postgres and one Redis. Phase `direct`: one
 * `parley serve` process, clients straight to its HTTP port. Phase `nginx`: a second process
 * and deploy/'s nginx config (TLS from a test CA) in front of both, clients through it. Each
 * phase: `senders` clients send to one room in a closed loop for `seconds`, `readers` streams
 * (through the same path) check they get each message once. Then `media` uploads and `parley backup` of the
 * result while one process still serves, and `parley restore` into a new database and data
 * directory, timed.
 */
export async function scaleOut(o: ScaleOutOptions): Promise<Record<string, unknown>> {
  ensureProxies();
  await ensureServerBuilt();
  const redisUrl = await benchRedis();
  if (!redisUrl) throw new Error('scale-out needs Redis (several processes share one)');
  const admin = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
  const dir = await mkdtemp(path.join(tmpdir(), 'parley-bench-scale-'));
  const dbNames = [`parley_bench_${randomBytes(5).toString('hex')}`, `parley_bench_${randomBytes(5).toString('hex')}`];
  const dbUrl = (name: string) => Object.assign(new URL(admin), { pathname: `/${name}` }).toString();
  const adminDb = async (sql: string) => {
    const c = new pg.Client({ connectionString: admin });
    await c.connect();
    await c.query(sql);
    await c.end();
  };
  for (const n of dbNames) await adminDb(`CREATE DATABASE ${n}`);
  const procs: ChildProcess[] = [];
  let proxy: ChildProcess | null = null;
  const prefix = redisPrefix('scale');
  const env = (port: number, dataDir = path.join(dir, 'data'), db = dbUrl(dbNames[0] as string)): NodeJS.ProcessEnv => ({
    ...PRODUCTION_ENV,
    ...process.env,
    PARLEY_CONFIG: path.join(dir, 'parley.yaml'),
    PARLEY_DATA_DIR: dataDir,
    PARLEY_SERVER_NAME: 'scale.bench',
    PARLEY_HTTP_PORT: String(port),
    PARLEY_HTTP_HOST: '127.0.0.1',
    PARLEY_LOG_LEVEL: 'warn',
    DATABASE_URL: db,
    REDIS_URL: redisUrl,
    PARLEY_REDIS_PREFIX: prefix,
  });
  const serve = async (port: number) => {
    const log = openSync(path.join(dir, `serve-${port}.log`), 'a');
    const child = spawn(process.execPath, [...PRODUCTION_NODE_FLAGS, BIN, 'serve'], { env: env(port), stdio: ['ignore', log, log] });
    procs.push(child);
    for (
      let i = 0;
      !(await fetch(`http://127.0.0.1:${port}/health`).then(
        (r) => r.ok,
        () => false,
      ));
      i++
    ) {
      if (child.exitCode !== null || i > 600) throw new Error(`parley serve on ${port} did not start (${dir}/serve-${port}.log)`);
      await sleep(100);
    }
    return child;
  };

  try {
    await mkdir(path.join(dir, 'data'), { mode: 0o700 });
    const settings = {
      http: { trust_proxy: true },
      rate_limits: { enabled: false },
      presence: { enabled: false },
      federation: { enabled: false },
      auth: { argon2: { memory_kib: 8192, iterations: 1, parallelism: 1 } },
    };
    await writeFile(path.join(dir, 'parley.yaml'), JSON.stringify(settings));
    const tls = await makeTestCa(dir);
    const [h1, h2, httpsPort, httpPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
    const first = await serve(h1);
    const direct = `http://127.0.0.1:${h1}`;

    const users = await Promise.all(
      Array.from({ length: o.senders + o.readers }, async (_, i) => {
        const c = new ParleyClient({ baseUrl: direct });
        await c.register({ username: `u${i}`, password: `u${i} bench password` });
        const session = c.session as NonNullable<typeof c.session>;
        return { session, token: session.access_token };
      }),
    );

    /** The proxy's CPU-s: its master and its workers (children, from /proc). */
    const proxyCpu = () => {
      const pid = proxy?.pid;
      if (!pid) return 0;
      let children: number[] = [];
      try {
        children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
      } catch {
        // gone
      }
      return [pid, ...children].reduce((n, p) => n + cpuSeconds(p), 0);
    };
    const phase = async (name: string, base: string, doFetch: typeof fetch, ca?: string) => {
      const as = (i: number) => {
        return new RoomsApi(new ParleyClient({ baseUrl: base, fetch: doFetch, session: users[i]?.session ?? null }));
      };
      const { room_id: roomId } = await as(0).create({ visibility: 'public', name });
      await pool(users.length - 1, 8, async (i) => void (await as(i + 1).join(roomId)));
      const seen: Array<Map<string, number>> = [];
      let duplicates = 0;
      const sockets = await Promise.all(
        users.slice(o.senders).map(
          (u, r) =>
            new Promise<WebSocket>((resolve, reject) => {
              const mine = new Map<string, number>();
              seen[r] = mine;
              const ws = new WebSocket(`${base.replace(/^http/, 'ws')}/api/v1/stream`, { ca, perMessageDeflate: false });
              ws.on('error', reject);
              ws.on('message', (raw) => {
                const msg = JSON.parse(raw.toString());
                if (msg.op === 'hello') ws.send(JSON.stringify({ op: 'identify', token: u.token }));
                else if (msg.op === 'ready') resolve(ws);
                const body = msg.frame?.data?.event?.content?.body;
                if (msg.op === 'frame' && msg.frame.data.event.room_id === roomId && typeof body === 'string') {
                  if (mine.has(body)) duplicates++;
                  mine.set(body, performance.now());
                }
              });
            }),
        ),
      );
      const cpu0 = procs.map((p) => cpuSeconds(p.pid));
      const proxy0 = proxyCpu();
      const bench0 = process.cpuUsage();
      const latencies: number[] = [];
      let failures = 0;
      const t0 = performance.now();
      const until = t0 + o.seconds * 1000;
      await Promise.all(
        Array.from({ length: o.senders }, async (_, s) => {
          const rooms = as(s);
          for (let i = 0; performance.now() < until; i++) {
            const sentAt = performance.now();
            try {
              await rooms.sendText(roomId, `s${s}|${i}`);
              latencies.push(performance.now() - sentAt);
            } catch {
              failures++;
            }
          }
        }),
      );
      const elapsed = (performance.now() - t0) / 1000;
      const drainUntil = performance.now() + 15_000;
      while (performance.now() < drainUntil && seen.some((m) => m.size < latencies.length)) await sleep(50);
      for (const ws of sockets) ws.close();
      return {
        processes: procs.filter((p) => p.exitCode === null).length,
        messages: latencies.length,
        messages_per_s: Math.round(latencies.length / elapsed),
        send_ms: percentiles(latencies),
        send_failures: failures,
        missing_on_streams: seen.reduce((n, m) => n + latencies.length - m.size, 0),
        duplicates,
        server_cpu_s: procs.map((p, i) => Math.round((cpuSeconds(p.pid) - (cpu0[i] ?? 0)) * 100) / 100),
        proxy_cpu_s: Math.round((proxyCpu() - proxy0) * 100) / 100,
        // The bench process itself: clients, TLS, stream readers.
        bench_cpu_s: Math.round(((process.cpuUsage(bench0).user + process.cpuUsage(bench0).system) / 1e6) * 100) / 100,
      };
    };

    const one = await phase('direct', direct, fetch);
    await serve(h2);
    proxy = await startNginx({ dir, tls, https: httpsPort, http: httpPort, upstreams: [h1, h2] });
    const base = `https://127.0.0.1:${httpsPort}`;
    const viaProxy = fetchWithCa(tls.ca);
    for (
      let i = 0;
      !(await viaProxy(`${base}/health`).then(
        (r) => r.ok,
        () => false,
      ));
      i++
    ) {
      if (i > 300) throw new Error('nginx did not answer');
      await sleep(100);
    }
    const two = await phase('nginx', base, viaProxy, tls.ca);

    // Backup while the first process serves a trickle of sends; restore into a fresh set.
    procs[1]?.kill('SIGTERM');
    const uploader = new ParleyClient({ baseUrl: direct, session: users[0]?.session ?? null });
    // Media for the backup to carry: `media` files of 256 KiB.
    await pool(o.media, 4, async (i) => {
      await uploadMedia(uploader, randomBytes(256 * 1024), { filename: `m${i}.bin`, contentType: 'application/octet-stream' });
    });
    const trickleRooms = new RoomsApi(uploader);
    const { room_id: trickleRoom } = await trickleRooms.create({ visibility: 'public', name: 'during backup' });
    let sending = true;
    let duringBackup = 0;
    const traffic = (async () => {
      while (sending) {
        await trickleRooms.sendText(trickleRoom, `during ${duringBackup}`);
        duringBackup++;
      }
    })();
    const backupDir = path.join(dir, 'backup');
    const backedUp = await cli(env(h1), ['backup', backupDir]);
    sending = false;
    await traffic;
    await mkdir(path.join(dir, 'restored'), { mode: 0o700 });
    const restored = await cli(env(h1, path.join(dir, 'restored'), dbUrl(dbNames[1] as string)), ['restore', backupDir]);
    first.kill('SIGTERM');

    return {
      scenario: 'scale-out',
      senders: o.senders,
      readers: o.readers,
      seconds: o.seconds,
      one_process_direct: one,
      two_processes_nginx: two,
      media_files: o.media,
      backup: { wall_ms: Math.round(backedUp.ms), sends_during: duringBackup, says: backedUp.stdout.trim() },
      restore: { wall_ms: Math.round(restored.ms), says: restored.stdout.trim() },
    };
  } finally {
    proxy?.kill('SIGKILL');
    for (const p of procs) if (p.exitCode === null) p.kill('SIGKILL');
    await sleep(500);
    await redisDeletePrefix(redisUrl, prefix).catch(() => undefined);
    for (const n of dbNames) await adminDb(`DROP DATABASE IF EXISTS ${n} WITH (FORCE)`).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  }
}
