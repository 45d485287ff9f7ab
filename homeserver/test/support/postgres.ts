import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { startEmbeddedPostgres } from '../../src/db/embedded.js';
import { createLogger } from '../../src/logger.js';

/**
 * Where test databases live: DATABASE_URL, else the local server on 127.0.0.1:5432 when it
 * answers, else an embedded Postgres started for this test file.
 */
let adminUrl: Promise<{ url: string; stop: () => Promise<void> }> | undefined;

async function answers(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 });
  try {
    await client.connect();
    await client.query('select 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => {});
  }
}

async function resolveAdmin(): Promise<{ url: string; stop: () => Promise<void> }> {
  const candidates = [process.env.DATABASE_URL, 'postgres://postgres@127.0.0.1:5432/postgres'].filter(Boolean) as string[];
  for (const url of candidates) {
    if (await answers(url)) return { url, stop: async () => {} };
  }
  const dir = await mkdtemp(path.join(tmpdir(), 'parley-test-pg-'));
  const embedded = await startEmbeddedPostgres(dir, null, createLogger('silent'), { adopt: true });
  return {
    url: embedded.url.replace(/\/parley$/, '/postgres'),
    stop: async () => {
      await embedded.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export interface TestDatabase {
  url: string;
  name: string;
  drop(): Promise<void>;
}

/** A fresh database for one test file; `drop()` removes it and everything in it. */
export async function createTestDatabase(): Promise<TestDatabase> {
  adminUrl ??= resolveAdmin();
  const admin = await adminUrl;
  const name = `parley_test_${randomBytes(6).toString('hex')}`;
  const client = new pg.Client({ connectionString: admin.url });
  await client.connect();
  await client.query(`CREATE DATABASE ${name}`);
  await client.end();
  const url = new URL(admin.url);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    name,
    drop: async () => {
      const c = new pg.Client({ connectionString: admin.url });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}

/** Runs SQL as the admin user against any database (for tests that poke at storage). */
export async function adminQuery(database: string | null, sql: string, params: unknown[] = []): Promise<pg.QueryResult> {
  adminUrl ??= resolveAdmin();
  const url = new URL((await adminUrl).url);
  if (database) url.pathname = `/${database}`;
  const client = new pg.Client({ connectionString: url.toString() });
  await client.connect();
  try {
    return await client.query(sql, params);
  } finally {
    await client.end();
  }
}
