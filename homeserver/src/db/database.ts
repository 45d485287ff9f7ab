import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import knexFactory, { type Knex } from 'knex';
import pg from 'pg';
import type { Logger } from '../logger.js';
import { BUNDLED, HOMESERVER_DIR } from '../paths.js';

// bigint columns hold epoch milliseconds and counters, all far below 2^53.
pg.types.setTypeParser(pg.types.builtins.INT8, (v) => Number(v));

export type Db = Knex;

// The bundle (`pnpm build`) carries the migrations compiled to dist/migrations/*.mjs; the
// sources run them as TypeScript. Their names (without extension) are the same either way.
const MIGRATIONS_DIR = BUNDLED ? path.join(HOMESERVER_DIR, 'dist', 'migrations') : path.join(HOMESERVER_DIR, 'migrations');

interface MigrationModule {
  up(knex: Knex): Promise<void>;
  down(knex: Knex): Promise<void>;
}

/** Loads `migrations/<timestamp>_<name>.ts` in name order; names are never edited once landed. */
class DirectoryMigrationSource implements Knex.MigrationSource<string> {
  async getMigrations(): Promise<string[]> {
    const files = await readdir(MIGRATIONS_DIR);
    return files.filter((f) => /^\d{14}_[a-z0-9_]+\.(ts|mjs)$/.test(f)).sort();
  }
  getMigrationName(file: string): string {
    return file.replace(/\.(ts|mjs)$/, '');
  }
  async getMigration(file: string): Promise<Knex.Migration> {
    const mod = (await import(pathToFileURL(path.join(MIGRATIONS_DIR, file)).href)) as MigrationModule;
    return { up: mod.up, down: mod.down };
  }
}

export const migrationConfig: Knex.MigratorConfig = {
  migrationSource: new DirectoryMigrationSource(),
  tableName: 'parley_migrations',
};

export function createDb(url: string, poolMax: number, log?: Logger): Db {
  // knex writes pool and connection warnings to the console unless given a logger.
  const to = (level: 'warn' | 'error' | 'debug') => (message: unknown) => log?.[level]({ component: 'knex' }, String(message));
  return knexFactory({
    log: { warn: to('warn'), error: to('error'), debug: to('debug'), deprecate: to('warn') },
    client: 'pg',
    connection: { connectionString: url, application_name: 'parley' },
    pool: { min: 0, max: poolMax, idleTimeoutMillis: 30_000 },
    acquireConnectionTimeout: 10_000,
  });
}

export async function migrateLatest(db: Db): Promise<string[]> {
  const [, applied] = (await db.migrate.latest(migrationConfig)) as [number, string[]];
  return applied;
}

export async function pendingMigrations(db: Db): Promise<string[]> {
  const [, pending] = (await db.migrate.list(migrationConfig)) as [unknown, Array<{ file: string } | string>];
  return pending.map((p) => (typeof p === 'string' ? p : p.file));
}
