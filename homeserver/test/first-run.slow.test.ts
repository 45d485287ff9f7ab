import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ParleyClient } from '@parley/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, until } from './support/net.js';
import { createTestDatabase, type TestDatabase } from './support/postgres.js';

const ROOT = path.resolve(import.meta.dirname, '../..');

/**
 * The operator's first run, as the README says it: `pnpm start` in a terminal (a process
 * group, so Ctrl-C reaches pnpm, its shell and the server alike), one human line naming the
 * address to open, a server name that agrees with it, and a clean stop that looks clean.
 */
describe('pnpm start: start and stop lines', () => {
  let database: TestDatabase;
  let dataDir: string;
  let pnpm: string;
  const children: ChildProcess[] = [];

  beforeAll(async () => {
    database = await createTestDatabase();
    dataDir = await mkdtemp(path.join(tmpdir(), 'parley-first-run-'));
    // The pnpm the README's `npx -y pnpm@10` runs, called directly so signals reach it, not npx.
    pnpm = execFileSync('npx', ['-y', 'pnpm@10', 'exec', 'node', '-p', 'process.env.npm_execpath'], { cwd: ROOT, encoding: 'utf8' }).trim();
  });
  afterAll(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) process.kill(-(c.pid as number), 'SIGKILL');
    await database?.drop();
    await rm(dataDir, { recursive: true, force: true });
  });

  async function start(): Promise<{
    child: ChildProcess;
    output: () => string;
    exited: Promise<{ code: number | null; signal: string | null }>;
    port: number;
  }> {
    const port = await freePort();
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      DATABASE_URL: database.url,
      PARLEY_DATA_DIR: dataDir,
      PARLEY_HTTP_PORT: String(port),
      PARLEY_FEDERATION_PORT: '0',
      PARLEY_LOG_LEVEL: 'info',
    };
    delete env.PARLEY_SERVER_NAME;
    delete env.PARLEY_CONFIG;
    delete env.REDIS_URL;
    for (const k of Object.keys(env)) if (k.startsWith('npm_')) delete env[k];
    // stdout and stderr on one pipe, in the order a terminal shows them.
    const child = spawn('sh', ['-c', 'exec "$0" "$@" 2>&1', process.execPath, pnpm, 'start'], {
      cwd: ROOT,
      env,
      detached: true,
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    children.push(child);
    let out = '';
    child.stdout?.on('data', (d) => {
      out += d;
    });
    const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) =>
      child.once('close', (code, signal) => resolve({ code, signal })),
    );
    await until(() => out.includes('Parley is running'), 90_000).catch(() => {
      throw new Error(`never said it was running:\n${out}`);
    });
    return { child, output: () => out, exited, port };
  }

  const lastLine = (out: string) => out.trim().split('\n').at(-1);

  it('says where to open it; the server name agrees; SIGTERM to pnpm exits 0 with a clear last line', async () => {
    const { child, output, exited, port } = await start();
    // The JSON log may reach the pipe after the human line (pino writes asynchronously).
    await until(() => output().includes('parley homeserver listening'));
    expect(output()).toContain(`Parley is running: open http://localhost:${port}`);
    expect(output()).toContain(`server name localhost:${port}`);
    // The JSON log names the same address.
    const listening = output()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { msg: string; url?: string })
      .find((l) => l.msg === 'parley homeserver listening');
    expect(listening?.url).toBe(`http://localhost:${port}`);
    const alice = new ParleyClient({ baseUrl: `http://127.0.0.1:${port}` });
    await alice.register({ username: 'alice', password: 'alice password' });
    expect((await alice.whoami()).user_id).toBe(`@alice:localhost:${port}`);

    child.kill('SIGTERM');
    expect(await exited).toEqual({ code: 0, signal: null });
    expect(output()).not.toContain('ELIFECYCLE');
    expect(lastLine(output())).toBe('Parley stopped cleanly.');
  });

  it('Ctrl-C (SIGINT to the whole process group) exits 0: no ELIFECYCLE, a clear last line', async () => {
    const { child, output, exited, port } = await start();
    process.kill(-(child.pid as number), 'SIGINT');
    expect(await exited).toEqual({ code: 0, signal: null });
    expect(output()).not.toContain('ELIFECYCLE');
    expect(output()).not.toContain('Command failed');
    expect(lastLine(output())).toBe('Parley stopped cleanly.');
    await expect(fetch(`http://127.0.0.1:${port}/health`)).rejects.toThrow();
  });
});
