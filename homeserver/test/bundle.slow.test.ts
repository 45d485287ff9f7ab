import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, until } from './support/net.js';
import { adminQuery, createTestDatabase, type TestDatabase } from './support/postgres.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BUNDLE = path.join(ROOT, 'homeserver/dist/parley.mjs');

/**
 * Production runs `pnpm build`'s esbuild bundle, not the TypeScript sources: it must start,
 * apply the same migrations under the same names, serve, answer its CLI and stop cleanly.
 */
describe('the production bundle (homeserver/dist/parley.mjs)', () => {
  let db: TestDatabase;
  let dataDir: string;
  let env: NodeJS.ProcessEnv;
  let child: ChildProcess | null = null;

  beforeAll(async () => {
    const build = spawnSync(process.execPath, [path.join(ROOT, 'scripts/build-server.mjs')], { cwd: ROOT, encoding: 'utf8' });
    expect(build.status, build.stderr).toBe(0);
    db = await createTestDatabase();
    dataDir = await mkdtemp(path.join(tmpdir(), 'parley-bundle-'));
    env = {
      ...process.env,
      DATABASE_URL: db.url,
      PARLEY_DATA_DIR: dataDir,
      PARLEY_HTTP_PORT: String(await freePort()),
      PARLEY_FEDERATION_PORT: '0',
      PARLEY_LOG_LEVEL: 'info',
    };
    delete env.REDIS_URL;
    delete env.PARLEY_CONFIG;
  });
  afterAll(async () => {
    if (child && child.exitCode === null) child.kill('SIGKILL');
    await db?.drop();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('serves, with the same migrations as the sources, and stops with exit 0 on SIGTERM', async () => {
    let output = '';
    child = spawn(process.execPath, [BUNDLE, 'serve'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout?.on('data', (c: Buffer) => {
      output += c.toString();
    });
    child.stderr?.on('data', (c: Buffer) => {
      output += c.toString();
    });
    const url = `http://127.0.0.1:${env.PARLEY_HTTP_PORT}`;
    await until(async () => {
      try {
        return (await fetch(`${url}/health`)).ok;
      } catch {
        return false;
      }
    }, 60_000);
    const health = (await (await fetch(`${url}/health`)).json()) as { status: string; version: string };
    expect(health.status).toBe('ok');
    const register = await fetch(`${url}/api/v1/auth/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'bundled', password: 'bundled password' }),
    });
    expect(register.status).toBe(201);

    const sources = (await readdir(path.join(ROOT, 'homeserver/migrations')))
      .filter((f) => /^\d{14}_.*\.ts$/.test(f))
      .map((f) => f.slice(0, -3));
    const applied = (await adminQuery(db.name, 'select name from parley_migrations order by name')).rows.map((r) => r.name as string);
    expect(applied).toEqual(sources.sort());

    const exited = new Promise<number | null>((resolve) => child?.once('exit', (code) => resolve(code)));
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(output).not.toMatch(/tsx|ERR_UNKNOWN_FILE_EXTENSION/);
  });

  it('dials other servers: the code it loads on first use is in the bundle and works', async () => {
    // A peer on a loopback port nothing listens on: the first outgoing federation request
    // loads the federation HTTP client (undici, a lazily imported chunk) and must fail as
    // unreachable, not on the import (it once failed with "Pool is not a constructor").
    const config = path.join(dataDir, 'dial.yaml');
    await writeFile(
      config,
      JSON.stringify({ federation: { static_servers: { 'peer.test': `127.0.0.1:${await freePort()}` }, allow_private: ['127.0.0.0/8'] } }),
    );
    const run = spawnSync(process.execPath, [BUNDLE, 'doctor', '--peer', 'peer.test'], {
      env: { ...env, PARLEY_CONFIG: config },
      encoding: 'utf8',
    });
    const line = /^\S+\s+reachability\s+(.*)$/m.exec(run.stdout)?.[1] ?? '';
    expect(line, run.stdout + run.stderr).toMatch(/^could not ask peer\.test: .*(ECONNREFUSED|cannot connect)/);
    expect(run.stdout + run.stderr).not.toMatch(/is not a constructor|is not a function|Cannot find (module|package)/);
  });

  it('runs the CLI', () => {
    const run = spawnSync(process.execPath, [BUNDLE, 'user', 'create', 'admin', '--admin'], { env, encoding: 'utf8' });
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/^created @admin:/m);
  });
});
