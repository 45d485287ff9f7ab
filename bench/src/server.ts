import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
/**
 * What production runs: the esbuild bundle (`homeserver/dist/parley.mjs`), rebuilt by
 * scripts/build-server.mjs when a source is newer. PARLEY_BENCH_SOURCES=1 runs the TypeScript
 * sources through tsx instead (stack traces point at the sources; slower start, more memory).
 */
export const fromSources = process.env.PARLEY_BENCH_SOURCES === '1';
// PARLEY_BENCH_BIN=<path> runs another build of the server (e.g. to compare two bundles).
const BIN = process.env.PARLEY_BENCH_BIN
  ? path.resolve(process.env.PARLEY_BENCH_BIN)
  : path.join(ROOT, fromSources ? 'homeserver/bin/parley.mjs' : 'homeserver/dist/parley.mjs');

/** Node flags of `pnpm start`, the systemd unit and the container (docs/operator-guide.md). */
export const PRODUCTION_NODE_FLAGS = ['--max-semi-space-size=4', '--max-old-space-size=1024', '--v8-pool-size=2'];
/** The environment they set beside the flags: at most two glibc malloc arenas. */
export const PRODUCTION_ENV = { MALLOC_ARENA_MAX: '2' };

let built: Promise<void> | null = null;
/** Builds the server bundle once per bench run when it is missing or stale (no-op from sources). */
export function ensureServerBuilt(): Promise<void> {
  if (fromSources || process.env.PARLEY_BENCH_BIN) return Promise.resolve();
  built ??= new Promise<void>((resolve, reject) => {
    execFile(process.execPath, [path.join(ROOT, 'scripts/build-server.mjs')], { cwd: ROOT }, (err, _stdout, stderr) =>
      err ? reject(new Error(`building the server bundle failed: ${stderr || err.message}`)) : resolve(),
    );
  });
  return built;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

export interface BenchServer {
  /** The server name in user and room IDs. */
  serverName: string;
  url: string;
  /** The server's own database (null on the embedded Postgres). */
  databaseUrl: string | null;
  /** The current process (a new one after `resume`). */
  readonly pid: number;
  /** VmHWM and VmRSS (kB) and utime+stime (s) of the server process, from /proc. */
  usage(): { peak_rss_kb: number; rss_kb: number; cpu_s: number };
  /** Resets VmHWM to the current RSS; false when the kernel refuses. */
  resetPeak(): boolean;
  /** Stops the process (SIGTERM), keeping its database, data directory and ports. */
  halt(): Promise<void>;
  /** Starts the process again after `halt`; answers when /health first answered (performance.now()). */
  resume(): Promise<number>;
  /** Stops the process and deletes its database, Redis keys and data directory. */
  stop(): Promise<void>;
}

async function adminUrl(): Promise<string | null> {
  const url = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 });
  try {
    await c.connect();
    await c.end();
    return url;
  } catch {
    return null;
  }
}

export interface ServerOptions {
  /** Server name; default `<name>.bench`. */
  serverName?: string;
  /** Federation listener on this port (TLS, loopback), knowing peers through a static map. */
  federation?: { port: number; staticServers: Record<string, string> };
  /** BullMQ delivery and pub/sub through this Redis, under its own key prefix. */
  redis?: { url: string; prefix: string };
  /**
   * Argon2id at the smallest cost the config accepts (8 MiB, 1 pass), for registering
   * thousands of bench users; never a production setting.
   */
  cheapArgon2?: boolean;
  /** More configuration, merged over the bench defaults key by key (e.g. `{ relay: { enabled: true } }`). */
  config?: Record<string, unknown>;
}

/**
 * One `parley serve` process on its own database (a fresh one on the local Postgres when it
 * answers, else the embedded Postgres in a temp data dir), with rate limits off.
 */
export async function startServer(name: string, options: ServerOptions = {}): Promise<BenchServer> {
  await ensureServerBuilt();
  const dataDir = await mkdtemp(path.join(tmpdir(), `parley-bench-${name}-`));
  const config = path.join(dataDir, 'parley.yaml');
  const settings: Record<string, unknown> = { rate_limits: { enabled: false }, presence: { enabled: false } };
  if (options.cheapArgon2) settings.auth = { argon2: { memory_kib: 8192, iterations: 1, parallelism: 1 } };
  if (options.federation) {
    settings.federation = {
      host: '127.0.0.1',
      port: options.federation.port,
      static_servers: options.federation.staticServers,
      allow_private: ['127.0.0.0/8'],
    };
  }
  for (const [key, value] of Object.entries(options.config ?? {})) {
    const prev = settings[key];
    settings[key] = prev && typeof prev === 'object' && value && typeof value === 'object' ? { ...prev, ...value } : value;
  }
  // JSON is YAML.
  await writeFile(config, JSON.stringify(settings, null, 2));
  const admin = await adminUrl();
  let dbName: string | null = null;
  let databaseUrl: string | undefined;
  if (admin) {
    dbName = `parley_bench_${randomBytes(5).toString('hex')}`;
    const c = new pg.Client({ connectionString: admin });
    await c.connect();
    await c.query(`CREATE DATABASE ${dbName}`);
    await c.end();
    const u = new URL(admin);
    u.pathname = `/${dbName}`;
    databaseUrl = u.toString();
  }
  const port = await freePort();
  const env: NodeJS.ProcessEnv = {
    ...PRODUCTION_ENV,
    ...process.env,
    PARLEY_CONFIG: config,
    PARLEY_DATA_DIR: dataDir,
    PARLEY_HTTP_PORT: String(port),
    PARLEY_HTTP_HOST: '127.0.0.1',
    PARLEY_SERVER_NAME: options.serverName ?? `${name}.bench`,
    PARLEY_LOG_LEVEL: process.env.PARLEY_BENCH_LOG_LEVEL ?? 'warn',
    PARLEY_FEDERATION_PORT: String(options.federation?.port ?? 0),
  };
  if (databaseUrl) env.DATABASE_URL = databaseUrl;
  else delete env.DATABASE_URL;
  delete env.REDIS_URL;
  delete env.PARLEY_REDIS_PREFIX;
  delete env.PARLEY_FEDERATION_ALLOW_PRIVATE;
  if (options.redis) {
    env.REDIS_URL = options.redis.url;
    env.PARLEY_REDIS_PREFIX = options.redis.prefix;
  }
  // The flags production runs with, then e.g. PARLEY_BENCH_SERVER_NODE_ARGS="--cpu-prof
  // --cpu-prof-dir=/tmp/prof" to profile the server (a later flag overrides an earlier one).
  const nodeArgs = [...PRODUCTION_NODE_FLAGS, ...(process.env.PARLEY_BENCH_SERVER_NODE_ARGS ?? '').split(' ').filter(Boolean)];
  const url = `http://127.0.0.1:${port}`;
  let child: ChildProcess;
  const launch = async (): Promise<number> => {
    child = spawn(process.execPath, [...nodeArgs, BIN, 'serve'], {
      env,
      // Server logs (stdout) are dropped unless PARLEY_BENCH_LOG_LEVEL asks for them, then they go to stderr.
      stdio: ['ignore', process.env.PARLEY_BENCH_LOG_LEVEL ? 2 : 'ignore', 'inherit'],
    });
    for (let i = 0; ; i++) {
      if (child.exitCode !== null) throw new Error(`server ${name} exited with ${child.exitCode}`);
      try {
        if ((await fetch(`${url}/health`)).ok) return performance.now();
      } catch {
        // starting
      }
      if (i > 600) throw new Error(`server ${name} did not become healthy`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  const halt = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      // With REDIS_URL the server logs "stopped" but its BullMQ connections keep the process
      // alive (bench/README.md, known issues). Nothing is in flight by now, so a clean stop
      // takes well under a second: after 3 s, SIGKILL.
      const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(timer);
    }
  };
  const server: BenchServer = {
    serverName: env.PARLEY_SERVER_NAME as string,
    url,
    databaseUrl: databaseUrl ?? null,
    get pid() {
      return child.pid as number;
    },
    usage() {
      const pid = child.pid as number;
      const status = readFileSync(`/proc/${pid}/status`, 'utf8');
      const kb = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const ticks = Number(fields[11]) + Number(fields[12]);
      return { peak_rss_kb: kb('VmHWM'), rss_kb: kb('VmRSS'), cpu_s: Math.round((ticks / 100) * 100) / 100 };
    },
    resetPeak() {
      // Writing 5 to clear_refs resets VmHWM to the current RSS (proc(5)), so a phase's peak is its own.
      try {
        writeFileSync(`/proc/${child.pid}/clear_refs`, '5');
        return true;
      } catch {
        return false;
      }
    },
    halt,
    resume: launch,
    async stop() {
      await halt();
      if (options.redis) await redisDeletePrefix(options.redis.url, options.redis.prefix).catch(() => undefined);
      if (admin && dbName) {
        const c = new pg.Client({ connectionString: admin });
        await c.connect();
        await c.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
        await c.end();
      }
      await rm(dataDir, { recursive: true, force: true });
    },
  };
  try {
    await launch();
  } catch (err) {
    await server.stop();
    throw err;
  }
  return server;
}

/**
 * One Redis command over RESP (the bench has no Redis client of its own): answers the reply
 * line(s) as text, or throws when nothing answers within 1.5 s.
 */
function redisCommand(url: string, args: string[]): Promise<string> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(u.port || 6379), u.hostname);
    const timer = setTimeout(() => socket.destroy(new Error('redis: no answer')), 1500);
    let reply = '';
    socket.on('connect', () => {
      if (u.password) socket.write(encode(['AUTH', ...(u.username ? [u.username] : []), decodeURIComponent(u.password)]));
      socket.write(encode(args));
    });
    socket.on('data', (d) => {
      reply += d.toString();
      const expected = u.password ? 2 : 1;
      if (reply.split('\r\n').length > expected) {
        clearTimeout(timer);
        socket.end();
        resolve(
          reply
            .split('\r\n')
            .slice(u.password ? 1 : 0)
            .join('\r\n'),
        );
      }
    });
    socket.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
  function encode(parts: string[]): string {
    return `*${parts.length}\r\n${parts.map((p) => `$${Buffer.byteLength(p)}\r\n${p}\r\n`).join('')}`;
  }
}

/**
 * Redis for federating bench servers: REDIS_URL, else 127.0.0.1:6379, when it answers PING
 * (PARLEY_BENCH_REDIS=0 turns it off); null means the in-process outbox poller.
 */
export async function benchRedis(): Promise<string | null> {
  if (process.env.PARLEY_BENCH_REDIS === '0') return null;
  const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
  try {
    return (await redisCommand(url, ['PING'])).startsWith('+PONG') ? url : null;
  } catch {
    return null;
  }
}

export function redisPrefix(name: string): string {
  return `parley-bench-${name}-${randomBytes(4).toString('hex')}:`;
}

export async function redisDeletePrefix(url: string, prefix: string): Promise<void> {
  const script = "local n = 0 for _, k in ipairs(redis.call('KEYS', ARGV[1])) do redis.call('DEL', k) n = n + 1 end return n";
  await redisCommand(url, ['EVAL', script, '0', `${prefix}*`]);
}

/**
 * Servers that federate with each other on loopback (self-signed TLS, static map, loopback
 * allowlisted), each its own process and database. Answers the servers in `names` order.
 */
export async function startFederation(names: string[], options: { redis: string | null; cheapArgon2?: boolean }): Promise<BenchServer[]> {
  const ports = new Map<string, number>();
  for (const n of names) ports.set(n, await freePort());
  const staticServers = Object.fromEntries(names.map((n) => [`${n}.bench`, `127.0.0.1:${ports.get(n)}`]));
  // Started side by side: most of a start is loading and migrating, and there are two cores.
  const results = await Promise.allSettled(
    names.map((n) =>
      startServer(n, {
        federation: { port: ports.get(n) as number, staticServers },
        ...(options.redis ? { redis: { url: options.redis, prefix: redisPrefix(n) } } : {}),
        ...(options.cheapArgon2 ? { cheapArgon2: true } : {}),
      }),
    ),
  );
  const started = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  const failure = results.find((r) => r.status === 'rejected');
  if (failure) {
    await Promise.all(started.map((s) => s.stop()));
    throw failure.reason;
  }
  return started;
}
