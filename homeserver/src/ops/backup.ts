import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync } from 'node:fs';
import { chmod, copyFile, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createGzip } from 'node:zlib';
import type pg from 'pg';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import type { Config } from '../config.js';
import { type Db, migrationConfig } from '../db/database.js';
import { VERSION } from '../version.js';

/**
 * `parley backup` / `parley restore`.
 *
 * The database is read in one REPEATABLE READ, READ ONLY transaction, so the dump is one
 * consistent snapshot while the server keeps serving; each table is streamed out with
 * `COPY … TO STDOUT` and gzipped. (The embedded Postgres ships no `pg_dump`, and a system
 * `pg_dump` older than the server refuses to run, so the backup speaks COPY itself.) The
 * signing keys, the TLS certificate, the media store and the configuration file are copied after the snapshot:
 * media files are written before their rows are committed and never rewritten, so every
 * file a dumped row names is there. `manifest.json` is written last and holds a SHA-256 of
 * every file, so a backup without it is incomplete and a damaged one is refused at restore.
 */

export const BACKUP_FORMAT = 'parley-backup/1';
// Files the server keeps in its data directory that make up its identity and its media.
const DATA_SUBDIRS = ['keys', 'tls', 'media'] as const;
// The configuration file's place in a backup; restore does not write it anywhere.
export const CONFIG_DIR = 'config';
// Bookkeeping that migrations write themselves.
const SKIPPED_TABLES = new Set([migrationConfig.tableName, `${migrationConfig.tableName}_lock`]);

export interface BackupManifest {
  format: typeof BACKUP_FORMAT;
  parley_version: string;
  server_name: string;
  created_at: string;
  migrations: string[];
  tables: Array<{ name: string; columns: string[]; rows: number; file: string; sha256: string }>;
  files: Array<{ path: string; bytes: number; sha256: string }>;
}

export interface BackupSummary {
  dir: string;
  tables: number;
  rows: number;
  files: number;
  bytes: number;
}

class OpsError extends Error {}
export const isOpsError = (err: unknown): err is OpsError => err instanceof OpsError;

/** Counts bytes and lines and hashes what passes through. */
function meter(): Transform & { sha256(): string; bytes: number; lines: number } {
  const hash = createHash('sha256');
  const t = new Transform({
    transform(chunk: Buffer, _enc, done) {
      hash.update(chunk);
      m.bytes += chunk.length;
      for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, i + 1)) m.lines++;
      done(null, chunk);
    },
  });
  const m = Object.assign(t, { bytes: 0, lines: 0, sha256: () => hash.digest('base64url') });
  return m;
}

async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('base64url');
}

async function listFiles(dir: string, base = dir): Promise<string[]> {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await listFiles(full, base)));
    else if (entry.isFile()) out.push(path.relative(base, full));
  }
  return out;
}

const quote = (name: string) => `"${name.replaceAll('"', '""')}"`;

/** A raw pg client from knex's pool (COPY needs the connection itself). */
async function withConnection<T>(db: Db, work: (conn: pg.Client) => Promise<T>): Promise<T> {
  const conn = (await db.client.acquireConnection()) as pg.Client;
  try {
    return await work(conn);
  } finally {
    await db.client.releaseConnection(conn);
  }
}

async function tableColumns(conn: pg.Client): Promise<Map<string, string[]>> {
  const { rows } = await conn.query<{ table_name: string; column_name: string }>(
    `select c.table_name, c.column_name
       from information_schema.columns c
       join pg_tables t on t.tablename = c.table_name and t.schemaname = c.table_schema
      where c.table_schema = 'public' and c.is_generated = 'NEVER'
      order by c.table_name, c.ordinal_position`,
  );
  const out = new Map<string, string[]>();
  for (const r of rows) {
    if (SKIPPED_TABLES.has(r.table_name)) continue;
    const cols = out.get(r.table_name) ?? [];
    cols.push(r.column_name);
    out.set(r.table_name, cols);
  }
  return out;
}

export interface BackupOptions {
  now?: Date;
  /**
   * The configuration file the server runs with, copied as `config/<its name>` (listed and
   * hashed like every file). `restore` leaves it in the backup: the operator puts it back.
   */
  configFile?: string | null;
}

export async function backup(config: Config, db: Db, outDir: string, options: BackupOptions = {}): Promise<BackupSummary> {
  const now = options.now ?? new Date();
  if (existsSync(outDir) && (await readdir(outDir)).length > 0) throw new OpsError(`${outDir} exists and is not empty`);
  await mkdir(path.join(outDir, 'db'), { recursive: true, mode: 0o700 });
  await chmod(outDir, 0o700);

  const manifest: BackupManifest = {
    format: BACKUP_FORMAT,
    parley_version: VERSION,
    server_name: config.server_name,
    created_at: now.toISOString(),
    migrations: [],
    tables: [],
    files: [],
  };

  await withConnection(db, async (conn) => {
    await conn.query('begin isolation level repeatable read read only');
    try {
      const { rows } = await conn.query<{ name: string }>(`select name from ${quote(migrationConfig.tableName as string)} order by id`);
      manifest.migrations = rows.map((r) => r.name);
      for (const [table, columns] of await tableColumns(conn)) {
        const file = `db/${table}.copy.gz`;
        const m = meter();
        const source = conn.query(copyTo(`copy (select ${columns.map(quote).join(', ')} from ${quote(table)}) to stdout`));
        await pipeline(source, m, createGzip(), createWriteStream(path.join(outDir, file), { mode: 0o600 }));
        manifest.tables.push({ name: table, columns, rows: m.lines, file, sha256: await sha256File(path.join(outDir, file)) });
      }
      await conn.query('commit');
    } catch (err) {
      await conn.query('rollback').catch(() => {});
      throw err;
    }
  });

  for (const sub of DATA_SUBDIRS) {
    for (const rel of await listFiles(path.join(config.data_dir, sub))) {
      const from = path.join(config.data_dir, sub, rel);
      const to = path.join(outDir, sub, rel);
      await mkdir(path.dirname(to), { recursive: true, mode: 0o700 });
      await copyFile(from, to);
      await chmod(to, 0o600);
      const { size } = await stat(to);
      manifest.files.push({ path: `${sub}/${rel}`, bytes: size, sha256: await sha256File(to) });
    }
  }

  if (options.configFile) {
    const rel = `${CONFIG_DIR}/${path.basename(options.configFile)}`;
    await mkdir(path.join(outDir, CONFIG_DIR), { recursive: true, mode: 0o700 });
    await copyFile(options.configFile, path.join(outDir, rel));
    await chmod(path.join(outDir, rel), 0o600);
    const { size } = await stat(path.join(outDir, rel));
    manifest.files.push({ path: rel, bytes: size, sha256: await sha256File(path.join(outDir, rel)) });
  }

  await writeFile(path.join(outDir, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`, { mode: 0o600 });
  let bytes = 0;
  for (const rel of await listFiles(outDir)) bytes += (await stat(path.join(outDir, rel))).size;
  return {
    dir: outDir,
    tables: manifest.tables.length,
    rows: manifest.tables.reduce((n, t) => n + t.rows, 0),
    files: manifest.files.length,
    bytes,
  };
}

/** Reads and checks a backup before anything is touched: every file must match its hash. */
export async function readBackup(dir: string): Promise<BackupManifest> {
  const file = path.join(dir, 'manifest.json');
  if (!existsSync(file)) throw new OpsError(`${dir} holds no manifest.json: not a backup, or an incomplete one`);
  let manifest: BackupManifest;
  try {
    manifest = JSON.parse(await readFile(file, 'utf8')) as BackupManifest;
  } catch {
    throw new OpsError(`${file} is not valid JSON`);
  }
  if (manifest.format !== BACKUP_FORMAT) throw new OpsError(`${file}: format ${String(manifest.format)} is not ${BACKUP_FORMAT}`);
  const entries = [...manifest.tables.map((t) => ({ path: t.file, sha256: t.sha256 })), ...manifest.files];
  for (const entry of entries) {
    const full = path.resolve(dir, entry.path);
    if (!full.startsWith(path.resolve(dir) + path.sep)) throw new OpsError(`manifest names a file outside the backup: ${entry.path}`);
    if (!existsSync(full)) throw new OpsError(`backup file missing: ${entry.path}`);
    if ((await sha256File(full)) !== entry.sha256) throw new OpsError(`backup file damaged (hash differs): ${entry.path}`);
  }
  return manifest;
}

/** Tables in an order where every foreign key points at a table restored before it. */
async function restoreOrder(conn: pg.Client, tables: string[]): Promise<string[]> {
  const { rows } = await conn.query<{ child: string; parent: string }>(
    `select c.relname as child, p.relname as parent
       from pg_constraint k
       join pg_class c on c.oid = k.conrelid
       join pg_class p on p.oid = k.confrelid
       join pg_namespace n on n.oid = c.relnamespace
      where k.contype = 'f' and n.nspname = 'public' and c.relname <> p.relname`,
  );
  const parents = new Map<string, Set<string>>(tables.map((t) => [t, new Set()]));
  for (const r of rows) parents.get(r.child)?.add(r.parent);
  const done = new Set<string>();
  const order: string[] = [];
  while (order.length < tables.length) {
    const ready = tables.filter((t) => !done.has(t) && [...(parents.get(t) ?? [])].every((p) => done.has(p) || !parents.has(p)));
    if (ready.length === 0) throw new OpsError(`foreign keys form a cycle among ${tables.filter((t) => !done.has(t)).join(', ')}`);
    for (const t of ready) {
      done.add(t);
      order.push(t);
    }
  }
  return order;
}

export interface RestoreSummary {
  tables: number;
  rows: number;
  files: number;
  /** The backed-up configuration file, inside the backup (not restored anywhere). */
  configFile: string | null;
}

/**
 * Restores a backup into an empty database and data directory. The schema is brought to
 * exactly the backup's migrations first (so the rows fit), the rows are loaded in one
 * transaction, sequences are moved past the restored ids, and the caller then applies any
 * newer migrations as a normal start would.
 */
export async function restore(config: Config, db: Db, dir: string): Promise<RestoreSummary> {
  const manifest = await readBackup(dir);
  if (manifest.server_name !== config.server_name) {
    throw new OpsError(
      `the backup is of ${manifest.server_name} but this configuration names ${config.server_name}: set server_name to restore it`,
    );
  }
  for (const sub of DATA_SUBDIRS) {
    if ((await listFiles(path.join(config.data_dir, sub))).length > 0) {
      throw new OpsError(`${path.join(config.data_dir, sub)} is not empty: restore only onto a fresh data directory`);
    }
  }

  const [, pending] = (await db.migrate.list(migrationConfig)) as [Array<{ name: string } | string>, Array<{ file: string } | string>];
  const known = new Set(pending.map((p) => (typeof p === 'string' ? p : p.file).replace(/\.(ts|mjs)$/, '')));
  const [completed] = (await db.migrate.list(migrationConfig)) as [Array<{ name: string } | string>, unknown];
  for (const c of completed) known.add((typeof c === 'string' ? c : c.name).replace(/\.(ts|mjs)$/, ''));
  const unknown = manifest.migrations.filter((m) => !known.has(m));
  if (unknown.length > 0) throw new OpsError(`the backup comes from a newer Parley (migrations ${unknown.join(', ')}): upgrade first`);
  // Bring the schema up to the backup's newest migration and no further, so the rows fit;
  // newer migrations run after the rows are in, as at an upgrade.
  const last = [...manifest.migrations].sort().at(-1) ?? '';
  for (;;) {
    const [, next] = (await db.migrate.list(migrationConfig)) as [unknown, Array<{ file: string } | string>];
    const first = next[0] && (typeof next[0] === 'string' ? next[0] : next[0].file).replace(/\.(ts|mjs)$/, '');
    if (!first || first > last) break;
    await db.migrate.up(migrationConfig);
  }

  let rows = 0;
  await withConnection(db, async (conn) => {
    const { rows: users } = await conn.query<{ n: number }>('select count(*)::int as n from users');
    if ((users[0]?.n ?? 0) > 0) throw new OpsError('the database already has users: restore only into an empty database');
    const byName = new Map(manifest.tables.map((t) => [t.name, t]));
    const order = await restoreOrder(conn, [...byName.keys()]);
    await conn.query('begin');
    try {
      await conn.query(`truncate ${order.map(quote).join(', ')} cascade`);
      for (const name of order) {
        const t = byName.get(name);
        if (!t) continue;
        const sink = conn.query(copyFrom(`copy ${quote(name)} (${t.columns.map(quote).join(', ')}) from stdin`));
        await pipeline(createReadStream(path.join(dir, t.file)), createGunzip(), sink);
        rows += t.rows;
      }
      // Serial and identity columns: continue after the largest restored value.
      const { rows: seqs } = await conn.query<{ seq: string; tbl: string; col: string }>(
        `select s.relname as seq, t.relname as tbl, a.attname as col
           from pg_class s
           join pg_depend d on d.objid = s.oid and d.deptype in ('a', 'i')
           join pg_class t on t.oid = d.refobjid
           join pg_attribute a on a.attrelid = t.oid and a.attnum = d.refobjsubid
           join pg_namespace n on n.oid = s.relnamespace
          where s.relkind = 'S' and n.nspname = 'public'`,
      );
      for (const s of seqs) {
        await conn.query(`select setval('${quote(s.seq)}', coalesce((select max(${quote(s.col)}) from ${quote(s.tbl)}), 0) + 1, false)`);
      }
      await conn.query('commit');
    } catch (err) {
      await conn.query('rollback').catch(() => {});
      throw err;
    }
  });

  for (const f of manifest.files) {
    if (f.path.startsWith(`${CONFIG_DIR}/`)) continue;
    const to = path.join(config.data_dir, f.path);
    await mkdir(path.dirname(to), { recursive: true, mode: 0o700 });
    await copyFile(path.join(dir, f.path), to);
    await chmod(to, 0o600);
  }
  const configEntry = manifest.files.find((f) => f.path.startsWith(`${CONFIG_DIR}/`));
  return {
    tables: manifest.tables.length,
    rows,
    files: manifest.files.length - (configEntry ? 1 : 0),
    configFile: configEntry ? path.join(dir, configEntry.path) : null,
  };
}
