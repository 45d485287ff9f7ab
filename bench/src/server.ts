import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';

const BIN = fileURLToPath(new URL('../../homeserver/bin/parley.mjs', import.meta.url));

export async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

export interface BenchServer {
  url: string;
  pid: number;
  /** VmHWM and VmRSS (kB) and utime+stime (s) of the server process, from /proc. */
  usage(): { peak_rss_kb: number; rss_kb: number; cpu_s: number };
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

/**
 * One `parley serve` process on its own database (a fresh one on the local Postgres when it
 * answers, else the embedded Postgres in a temp data dir), with rate limits off.
 */
export async function startServer(name: string): Promise<BenchServer> {
  const dataDir = await mkdtemp(path.join(tmpdir(), `parley-bench-${name}-`));
  const config = path.join(dataDir, 'parley.yaml');
  await writeFile(config, 'rate_limits:\n  enabled: false\npresence:\n  enabled: false\n');
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
    ...process.env,
    PARLEY_CONFIG: config,
    PARLEY_DATA_DIR: dataDir,
    PARLEY_HTTP_PORT: String(port),
    PARLEY_HTTP_HOST: '127.0.0.1',
    PARLEY_SERVER_NAME: `${name}.bench`,
    PARLEY_LOG_LEVEL: 'warn',
    PARLEY_FEDERATION_PORT: '0',
  };
  if (databaseUrl) env.DATABASE_URL = databaseUrl;
  else delete env.DATABASE_URL;
  delete env.REDIS_URL;
  // e.g. PARLEY_BENCH_SERVER_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" to profile the server.
  const nodeArgs = (process.env.PARLEY_BENCH_SERVER_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const child: ChildProcess = spawn(process.execPath, [...nodeArgs, BIN, 'serve'], { env, stdio: ['ignore', 'ignore', 'inherit'] });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    if (child.exitCode !== null) throw new Error(`server ${name} exited with ${child.exitCode}`);
    try {
      if ((await fetch(`${url}/health`)).ok) break;
    } catch {
      // starting
    }
    if (i > 600) throw new Error(`server ${name} did not become healthy`);
    await new Promise((r) => setTimeout(r, 100));
  }
  const pid = child.pid as number;
  return {
    url,
    pid,
    usage() {
      const status = readFileSync(`/proc/${pid}/status`, 'utf8');
      const kb = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const ticks = Number(fields[11]) + Number(fields[12]);
      return { peak_rss_kb: kb('VmHWM'), rss_kb: kb('VmRSS'), cpu_s: Math.round((ticks / 100) * 100) / 100 };
    },
    async stop() {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
      if (admin && dbName) {
        const c = new pg.Client({ connectionString: admin });
        await c.connect();
        await c.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
        await c.end();
      }
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}
