import { existsSync } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { check, Localpart, Password } from '@parley/schemas';
import { pino } from 'pino';
import { type Config, ConfigError, loadConfig } from './config.js';
import { migrateLatest } from './db/database.js';
import { createFederation } from './federation/setup.js';
import { createLogger, type Logger } from './logger.js';
import { loadIdentity, openDatabase, startHomeserver } from './server.js';
import { systemClock } from './services/clock.js';
import { createServices } from './services/index.js';
import { mintRegistrationToken, parseDuration } from './services/registration.js';

const USAGE = `usage: parley <command> [options]

commands:
  serve                                   start the homeserver
  migrate                                 apply database migrations and exit
  user create <name> [--admin] [--password-stdin]
                                          create a local user (prints a generated
                                          password unless --password-stdin is given)
  registration-token create [--uses N] [--expires-in 7d]
  registration-token list
  registration-token delete <token>
  backup <dir>                            back up the database (one consistent snapshot,
                                          also while serving), keys, TLS certificate, media
                                          and the config file into a new directory
  restore <dir>                           restore a backup onto a fresh data directory and
                                          empty database (same server_name)
  doctor [--peer <server>]                check the configuration, ports, database, Redis,
                                          TLS, disk and name resolution, and with --peer whether
                                          that server reaches our federation port; exit 1 on a failure
  release <command> …                     sign and publish releases (TUF): keygen, init, sign,
                                          add, timestamp, rotate-root, status
                                          ('parley release' alone lists them)
  update apply                            fetch the newest server bundle from the mirrors,
                                          verify it (TUF) and unpack it under data_dir/releases
  room verify <roomId>                    re-verify a room's stored log (signatures,
                                          hashes, chain, auth rules); exit 1 naming the
                                          first broken event

options:
  --config <file>                         config file (default: $PARLEY_CONFIG or ./parley.yaml)
`;

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r?\n$/, '');
}

/** One `parley serve` per data directory: a second one would fight over the embedded Postgres. */
async function claimDataDir(config: Config): Promise<() => Promise<void>> {
  const pidFile = path.join(config.data_dir, 'parley.pid');
  if (existsSync(pidFile)) {
    const pid = Number((await readFile(pidFile, 'utf8')).trim());
    let alive = false;
    try {
      if (pid > 0 && pid !== process.pid) {
        process.kill(pid, 0);
        alive = true;
      }
    } catch {
      alive = false;
    }
    if (alive) throw new ConfigError(`another parley serve (pid ${pid}) is using ${config.data_dir}`);
  }
  await writeFile(pidFile, `${process.pid}\n`);
  return () => rm(pidFile, { force: true });
}

async function serve(config: Config, log: Logger): Promise<number> {
  const { mkdir } = await import('node:fs/promises');
  await mkdir(config.data_dir, { recursive: true, mode: 0o700 });
  // The embedded Postgres lives in the data dir, so only one server may run on it; with an
  // external database several processes of one server may share the directory (keys, media).
  const release = config.database.url ? async () => {} : await claimDataDir(config);
  let server: Awaited<ReturnType<typeof startHomeserver>>;
  try {
    server = await startHomeserver(config, { log });
  } catch (err) {
    await release();
    throw err;
  }
  // One human line beside the JSON logs (stderr, so stdout stays pure JSON for log shippers).
  process.stderr.write(`Parley is running: open ${server.openUrl} (server name ${config.server_name}, data in ${config.data_dir})\n`);
  await new Promise<void>((resolve) => {
    let received = false;
    const onSignal = (signal: string) => {
      // Ctrl-C under `pnpm start` arrives twice (the terminal's and pnpm's forwarded copy):
      // a repeat must not kill the shutdown that is already running.
      if (received) return;
      received = true;
      log.info({ signal }, 'signal received');
      process.stderr.write(`Parley is stopping (${signal})…\n`);
      resolve();
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
  await server.stop();
  await release();
  process.stderr.write('Parley stopped cleanly.\n');
  return 0;
}

/** Runs `work` with services on the database, then closes everything it opened. */
async function withServices<T>(config: Config, log: Logger, work: (s: ReturnType<typeof createServices>) => Promise<T>): Promise<T> {
  const { db, embedded } = await openDatabase(config, log, { adopt: false });
  try {
    return await work(createServices(config, db, null, systemClock, log, await loadIdentity(config)));
  } finally {
    await db.destroy();
    await embedded?.stop();
  }
}

/** The configuration file loadConfig read (the same rule), or null when there is none. */
function configFileOf(flag: string | undefined): string | null {
  const file = flag ?? process.env.PARLEY_CONFIG ?? (existsSync('parley.yaml') ? 'parley.yaml' : undefined);
  return file ? path.resolve(file) : null;
}

async function backupOrRestore(
  command: 'backup' | 'restore',
  config: Config,
  log: Logger,
  dir: string,
  configFile: string | null,
): Promise<number> {
  const started = Date.now();
  const { backup, isOpsError, restore } = await import('./ops/backup.js');
  const { db, embedded } = await openDatabase(config, log, { adopt: false, migrate: command === 'backup' });
  try {
    if (command === 'backup') {
      const s = await backup(config, db, path.resolve(dir), { configFile });
      const mb = (s.bytes / 1024 / 1024).toFixed(1);
      process.stdout.write(
        `backed up ${s.rows} rows of ${s.tables} tables and ${s.files} files (${mb} MiB) to ${s.dir} in ${((Date.now() - started) / 1000).toFixed(1)} s\n`,
      );
    } else {
      const s = await restore(config, db, path.resolve(dir));
      await migrateLatest(db);
      process.stdout.write(
        `restored ${s.rows} rows of ${s.tables} tables and ${s.files} files into ${config.data_dir} in ${((Date.now() - started) / 1000).toFixed(1)} s\n` +
          (s.configFile ? `the configuration file it was taken with is ${s.configFile} (not copied anywhere)\n` : ''),
      );
    }
    return 0;
  } catch (err) {
    if (!isOpsError(err)) throw err;
    process.stderr.write(`parley: ${err.message}\n`);
    return 1;
  } finally {
    await db.destroy();
    await embedded?.stop();
  }
}

export async function main(argv: string[]): Promise<number> {
  // The release manager's commands need no server configuration.
  if (argv[0] === 'release') {
    // Commands other than serve load their code when run (dist/chunks in the bundle), so
    // the server does not carry it.
    const { ReleaseError } = await import('./updates/release.js');
    const { runRelease } = await import('./updates/release-cli.js');
    try {
      return await runRelease(argv.slice(1));
    } catch (err) {
      if (!(err instanceof ReleaseError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS'))) throw err;
      process.stderr.write(`parley: ${(err as Error).message}\n`);
      return 2;
    }
  }
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        config: { type: 'string' },
        admin: { type: 'boolean', default: false },
        'password-stdin': { type: 'boolean', default: false },
        uses: { type: 'string' },
        'expires-in': { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
        peer: { type: 'string' },
      },
    });
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  const [command, sub, arg] = positionals;
  if (values.help || !command) {
    process.stdout.write(USAGE);
    return command ? 0 : 2;
  }

  let config: Config;
  try {
    config = loadConfig(values.config ? { file: values.config as string } : {});
  } catch (err) {
    process.stderr.write(`parley: ${(err as Error).message}\n`);
    return 2;
  }
  // Commands other than serve talk to the operator: stdout carries only their answer,
  // warnings go to stderr.
  // serve logs synchronously (pino.destination's default): an asynchronous stream's flush()
  // returns before its last write lands, so the JSON "stopped" line could follow the human one.
  const log =
    command === 'serve'
      ? createLogger(config.logging.level, pino.destination({ dest: 1, sync: true }))
      : createLogger('warn', pino.destination(2));

  try {
    switch (command) {
      case 'serve':
        return await serve(config, log);
      case 'migrate':
        await withServices(config, log, async () => undefined);
        process.stdout.write('migrations are current\n');
        return 0;
      case 'user': {
        if (sub !== 'create' || !arg) break;
        if (!check(Localpart, arg).ok) {
          process.stderr.write(`parley: "${arg}" is not a valid username (a-z, 0-9, . _ = -; at most 64)\n`);
          return 2;
        }
        const generated = !values['password-stdin'];
        const password = generated ? crypto.randomUUID() : await readStdin();
        if (!check(Password, password).ok) {
          process.stderr.write('parley: the password must be 8 to 1024 characters\n');
          return 2;
        }
        const userId = await withServices(config, log, (s) => s.accounts.createUser(arg, password, values.admin === true));
        process.stdout.write(`created ${userId}${values.admin ? ' (admin)' : ''}\n`);
        if (generated) process.stdout.write(`password: ${password}\n`);
        return 0;
      }
      case 'backup':
      case 'restore':
        if (!sub) break;
        return await backupOrRestore(command, config, log, sub, configFileOf(values.config as string | undefined));
      case 'update': {
        if (sub !== 'apply') break;
        const { applyServerUpdate } = await import('./updates/apply.js');
        const applied = await applyServerUpdate(config);
        for (const f of applied.failures) process.stderr.write(`parley: refused ${f.source}: ${f.error}\n`);
        process.stdout.write(
          `verified and unpacked from ${applied.mirror} into ${applied.dir}\n` +
            `to run it: stop parley, point the service at ${applied.dir} (e.g. ExecStart=/usr/bin/node ${applied.dir}/homeserver/dist/parley.mjs serve), start it\n`,
        );
        return 0;
      }
      case 'doctor': {
        const peer = values.peer as string | undefined;
        const { doctor, formatFindings } = await import('./ops/doctor.js');
        // With --peer, another server checks from outside that it reaches our federation port.
        const fed = peer ? await createFederation(config, await loadIdentity(config), systemClock, log) : null;
        let findings: Awaited<ReturnType<typeof doctor>>;
        try {
          findings = await doctor(config, {
            ...(fed && peer
              ? {
                  askPeer: {
                    peer,
                    ask: async () =>
                      (await fed.client.request({ destination: peer, method: 'POST', path: '/federation/v1/reachability', body: {} }))
                        .body as { reachable: boolean; error?: string },
                  },
                }
              : {}),
          });
        } finally {
          await fed?.close();
        }
        process.stdout.write(formatFindings(findings));
        return findings.some((f) => f.status === 'fail') ? 1 : 0;
      }
      case 'room': {
        if (sub !== 'verify' || !arg) break;
        // Events from other servers need their keys: fetched (and pinned) as the server would.
        const { RoomVerifier } = await import('./services/room-verify.js');
        const report = await withServices(config, log, async (s) => {
          const fed = config.federation.enabled ? await createFederation(config, s.identity, systemClock, log) : null;
          try {
            return await new RoomVerifier(s.roomRepo, s.eventRepo, s.identity, fed?.keyStore).verify(arg);
          } finally {
            await fed?.close();
          }
        });
        if (!report) {
          process.stderr.write(`parley: no room ${arg} on this server\n`);
          return 1;
        }
        if (report.ok) {
          process.stdout.write(`ok: ${report.events} events verified, head ${report.head}\n`);
          return 0;
        }
        process.stdout.write(`BROKEN at seq ${report.seq} (${report.event_id}): ${report.kind}: ${report.reason}\n`);
        return 1;
      }
      case 'registration-token': {
        if (sub === 'create') {
          const uses = values.uses === undefined ? null : Number(values.uses);
          if (uses !== null && (!Number.isInteger(uses) || uses < 1)) {
            process.stderr.write('parley: --uses must be a positive integer\n');
            return 2;
          }
          const ttl = values['expires-in'] === undefined ? null : parseDuration(values['expires-in'] as string);
          if (ttl === undefined) {
            process.stderr.write('parley: --expires-in must look like 30m, 12h or 7d\n');
            return 2;
          }
          const row = await withServices(config, log, (s) => mintRegistrationToken(s.registrationTokens, systemClock, uses, ttl));
          process.stdout.write(`${row.token}\n`);
          return 0;
        }
        if (sub === 'list') {
          const rows = await withServices(config, log, (s) => s.registrationTokens.list());
          for (const r of rows) {
            const expires = r.expires_ts === null ? 'never' : new Date(r.expires_ts).toISOString();
            process.stdout.write(`${r.token}  uses ${r.uses_completed}/${r.uses_allowed ?? '∞'}  expires ${expires}\n`);
          }
          return 0;
        }
        if (sub === 'delete' && arg) {
          const deleted = await withServices(config, log, (s) => s.registrationTokens.delete(arg));
          process.stdout.write(deleted ? 'deleted\n' : 'no such token\n');
          return deleted ? 0 : 1;
        }
        break;
      }
    }
  } catch (err) {
    const e = err as Error & { code?: string };
    process.stderr.write(`parley: ${e.code === 'PARLEY_USER_IN_USE' ? e.message : (e.message ?? String(err))}\n`);
    return 1;
  }
  process.stderr.write(USAGE);
  return 2;
}
