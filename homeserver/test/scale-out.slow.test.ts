import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, openSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ParleyClient, RoomsApi } from '@parley/sdk';
import { Agent, fetch as undiciFetch } from 'undici';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import WebSocket from 'ws';
import { freePort, until } from './support/net.js';
import { createTestDatabase, type TestDatabase } from './support/postgres.js';
import { ensureProxies, makeTestCa, type ProxySetup, startCaddy, startNginx, type TestCa } from './support/proxies.js';
import { createTestRedis, type TestRedis } from './support/redis.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BIN = path.join(ROOT, 'homeserver/bin/parley.mjs');

/** A stream reader that reconnects (through the proxy) from the last position it saw. */
class ResumingStream {
  readonly eventIds: string[] = [];
  reconnects = 0;
  private position = 0;
  private ws: WebSocket | null = null;
  private stopped = false;
  constructor(
    private readonly url: string,
    private readonly token: string,
    private readonly ca: string,
    private readonly roomId: string,
  ) {}
  start(): Promise<void> {
    return new Promise((resolve) => this.connect(resolve));
  }
  private connect(onReady?: () => void): void {
    const ws = new WebSocket(this.url, { ca: this.ca });
    this.ws = ws;
    ws.on('error', () => {});
    ws.on('message', (raw) => {
      const msg = JSON.parse(raw.toString()) as {
        op: string;
        frame?: { position: number; kind: string; data: { event?: { event_id: string; room_id: string; type: string } } };
      };
      if (msg.op === 'hello')
        ws.send(JSON.stringify({ op: 'identify', token: this.token, ...(this.position ? { since: this.position } : {}) }));
      if (msg.op === 'ready') onReady?.();
      if (msg.op === 'frame' && msg.frame) {
        this.position = Math.max(this.position, msg.frame.position);
        const e = msg.frame.data.event;
        if (msg.frame.kind === 'event' && e && e.room_id === this.roomId && e.type === 'room.message') this.eventIds.push(e.event_id);
      }
    });
    ws.on('close', () => {
      if (this.stopped) return;
      this.reconnects++;
      setTimeout(() => this.connect(), 200);
    });
  }
  stop(): void {
    this.stopped = true;
    this.ws?.terminate();
  }
}

/**
 * The operator guide's scale-out claim, for real: deploy/'s proxy configs — nginx (TLS from a
 * test CA, WebSocket upgrade, stream pass-through for federation) and Caddy (the same site,
 * with the test CA's certificate in place of automatic HTTPS) — each in front of two
 * `parley serve` processes on one Postgres and one Redis. One process is killed with -9 in the
 * middle of the traffic: every accepted message is delivered exactly once and the streams
 * resume on the other process.
 */
describe.each(['nginx', 'caddy'] as const)('scale-out: two processes behind %s', (proxy) => {
  let dir: string;
  let db: TestDatabase;
  let redis: TestRedis;
  const procs: ChildProcess[] = [];
  let proxyProcess: ChildProcess | null = null;
  let ports: { h1: number; h2: number; f1: number; f2: number; https: number; http: number; fed: number };
  let ca: string;
  let tls: TestCa;
  let agent: Agent;
  let base: string;

  const fetchVia = ((input: string, init?: RequestInit) =>
    undiciFetch(input, { ...(init as object), dispatcher: agent } as Parameters<typeof undiciFetch>[1])) as unknown as typeof fetch;

  function serve(httpPort: number, fedPort: number): ChildProcess {
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      PARLEY_CONFIG: path.join(dir, 'parley.yaml'),
      PARLEY_DATA_DIR: path.join(dir, 'data'),
      PARLEY_SERVER_NAME: 'scale.test',
      PARLEY_HTTP_PORT: String(httpPort),
      PARLEY_FEDERATION_PORT: String(fedPort),
      DATABASE_URL: db.url,
      REDIS_URL: redis.url,
      PARLEY_REDIS_PREFIX: redis.prefix,
    };
    // stderr to a file, never an unread pipe (a full pipe would block the process's writes).
    const log = openSync(path.join(dir, `serve-${httpPort}.log`), 'a');
    const child = spawn(process.execPath, [BIN, 'serve'], { env, stdio: ['ignore', log, log] });
    procs.push(child);
    return child;
  }
  const healthy = (url: string) => async () => {
    try {
      return (await fetchVia(url)).ok;
    } catch {
      return false;
    }
  };

  beforeAll(async () => {
    ensureProxies();
    dir = await mkdtemp(path.join(tmpdir(), 'parley-scale-'));
    tls = await makeTestCa(dir);
    ca = tls.ca;
    agent = new Agent({ connect: { ca } });

    db = await createTestDatabase();
    redis = await createTestRedis();
    await mkdir(path.join(dir, 'data'), { mode: 0o700 });
    await writeFile(
      path.join(dir, 'parley.yaml'),
      [
        'http: { host: 127.0.0.1, trust_proxy: true, shutdown_grace_ms: 1000 }',
        'rate_limits: { enabled: false }',
        'auth: { argon2: { memory_kib: 8192, iterations: 1, parallelism: 1 } }',
        'federation: { host: 127.0.0.1 }',
        'logging: { level: warn }',
        '',
      ].join('\n'),
    );
    ports = {
      h1: await freePort(),
      h2: await freePort(),
      f1: await freePort(),
      f2: await freePort(),
      https: await freePort(),
      http: await freePort(),
      fed: await freePort(),
    };
    // One at a time: the first applies the migrations.
    serve(ports.h1, ports.f1);
    await until(healthy(`http://127.0.0.1:${ports.h1}/health`), 60_000);
    serve(ports.h2, ports.f2);
    await until(healthy(`http://127.0.0.1:${ports.h2}/health`), 60_000);

    base = `https://127.0.0.1:${ports.https}`;
    const setup: ProxySetup = {
      dir,
      tls,
      https: ports.https,
      http: ports.http,
      upstreams: [ports.h1, ports.h2],
      federation: { port: ports.fed, upstreams: [ports.f1, ports.f2] },
    };
    proxyProcess = proxy === 'nginx' ? await startNginx(setup) : await startCaddy(setup);
    await until(healthy(`${base}/health`), 30_000);
  }, 240_000);

  afterAll(async () => {
    proxyProcess?.kill('SIGKILL');
    for (const p of procs) if (p.exitCode === null) p.kill('SIGKILL');
    await agent?.close();
    await db?.drop();
    await redis?.cleanup();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('serves the web API over TLS, delegates and passes federation through', async () => {
    const wellKnown = await (await fetchVia(`${base}/.well-known/parley/server`)).json();
    expect(wellKnown).toEqual({ server: 'chat.example.org:8448' });
    // Prometheus metrics: nginx lets the machine itself scrape them, Caddy refuses everyone.
    expect((await fetchVia(`${base}/metrics`)).status).toBe(proxy === 'nginx' ? 200 : 403);
    // Caddy has no TCP proxy here: federation goes to Parley directly (see deploy/caddy/Caddyfile).
    if (proxy === 'caddy') return;
    // Federation: nginx passes TLS through, so the answer comes with Parley's own certificate.
    const keys = (await (
      await undiciFetch(`https://127.0.0.1:${ports.fed}/federation/v1/keys`, {
        dispatcher: new Agent({ connect: { rejectUnauthorized: false } }),
      })
    ).json()) as { server_name: string };
    expect(keys.server_name).toBe('scale.test');
    // Plain HTTP is sent to HTTPS.
    const redirect = await fetchVia(`http://127.0.0.1:${ports.http}/api/v1/rooms`, { redirect: 'manual' });
    expect(redirect.status).toBe(301);
  });

  it('kill -9 of one process mid-traffic: every accepted message is delivered exactly once, streams resume', async () => {
    // On a failure, the proxy's and the processes' logs say which side answered what.
    onTestFailed(() => {
      const logs = [...readdirSync(dir).filter((f) => f.endsWith('.log')), 'nginx/error.log'].map((f) => path.join(dir, f));
      for (const f of logs.filter((l) => existsSync(l))) console.log(`--- ${f}\n${readFileSync(f, 'utf8').slice(-6000)}`);
    });
    const alice = new ParleyClient({ baseUrl: base, fetch: fetchVia });
    const bob = new ParleyClient({ baseUrl: base, fetch: fetchVia });
    await alice.register({ username: 'alice', password: 'alice password' });
    const bobSession = await bob.register({ username: 'bob', password: 'bob password' });
    const aliceRooms = new RoomsApi(alice);
    const bobRooms = new RoomsApi(bob);
    const { room_id: roomId } = await aliceRooms.create({ visibility: 'public', name: 'Scale' });
    await bobRooms.join(roomId);

    // Four streams: round robin puts some on each process.
    const streams = Array.from(
      { length: 4 },
      () => new ResumingStream(`wss://127.0.0.1:${ports.https}/api/v1/stream`, bobSession.access_token, ca, roomId),
    );
    await Promise.all(streams.map((s) => s.start()));

    const total = 300;
    const killAt = 100;
    const acked: string[] = [];
    const retried = { count: 0 };
    const sendOnce = async (i: number) => {
      const txnId = `m${i}`;
      for (let attempt = 0; ; attempt++) {
        try {
          const res = await aliceRooms.send(roomId, 'room.message', { body: `message ${i}` }, txnId);
          return res.event_id;
        } catch (err) {
          const status = (err as { status?: number }).status;
          if ((status !== undefined && status < 500 && status !== 429) || attempt > 100) throw err;
          retried.count++;
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    };
    const started = Date.now();
    let beforeKillMs = 0;
    const viaProxyMs: number[] = [];
    for (let i = 0; i < total; i++) {
      if (i === killAt) {
        beforeKillMs = Date.now() - started;
        procs[0]?.kill('SIGKILL');
      }
      const sentAt = performance.now();
      acked.push(await sendOnce(i));
      if (i < killAt) viaProxyMs.push(performance.now() - sentAt);
    }

    // Every stream ends up with every acknowledged message, once, in order.
    await until(() => streams.every((s) => acked.every((id) => s.eventIds.includes(id))), 60_000);
    for (const s of streams) {
      expect(new Set(s.eventIds).size).toBe(s.eventIds.length);
      expect(s.eventIds.filter((id) => acked.includes(id))).toEqual(acked);
    }
    expect(streams.reduce((n, s) => n + s.reconnects, 0)).toBeGreaterThan(0);
    // The room holds each message exactly once (retries of one txnId name one event).
    const bodies: string[] = [];
    let from: string | undefined;
    for (;;) {
      const page = await bobRooms.messages(roomId, { limit: 100, dir: 'f', ...(from ? { from } : {}) });
      for (const e of page.chunk) if (e.type === 'room.message') bodies.push(String(e.content.body));
      if (!page.end) break;
      from = page.end;
    }
    expect(bodies).toEqual(Array.from({ length: total }, (_, i) => `message ${i}`));
    for (const s of streams) s.stop();

    // Figures for the operator guide, not assertions: sequential sends through nginx to two
    // processes, and then directly to the surviving process.
    const direct = new ParleyClient({ baseUrl: `http://127.0.0.1:${ports.h2}` });
    await direct.login({ username: 'alice', password: 'alice password' });
    const directRooms = new RoomsApi(direct);
    const t0 = Date.now();
    const directSendMs: number[] = [];
    for (let i = 0; i < killAt; i++) {
      const sentAt = performance.now();
      await directRooms.send(roomId, 'room.message', { body: `direct ${i}` }, `d${i}`);
      directSendMs.push(performance.now() - sentAt);
    }
    const directMs = Date.now() - t0;
    const pct = (xs: number[], p: number) =>
      [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.ceil((p / 100) * xs.length) - 1)]?.toFixed(1);
    console.log(
      `scale-out figures (${proxy}): ${killAt} sequential sends through ${proxy} (2 processes) ${((killAt * 1000) / beforeKillMs).toFixed(0)}/s, ` +
        `p50 ${pct(viaProxyMs, 50)} ms, p99 ${pct(viaProxyMs, 99)} ms; direct to one process ${((killAt * 1000) / directMs).toFixed(0)}/s, ` +
        `p50 ${pct(directSendMs, 50)} ms, p99 ${pct(directSendMs, 99)} ms; ${retried.count} retried sends after the kill`,
    );
  }, 240_000);
});
