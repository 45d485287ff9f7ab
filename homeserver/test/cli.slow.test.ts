import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ParleyClient } from '@parley/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from './support/net.js';
import { embeddedPostgresEnv, runNode } from './support/run-node.js';

const BIN = fileURLToPath(new URL('../bin/parley.mjs', import.meta.url));

/**
 * The operator's path, for real: `parley serve` as its own process with no DATABASE_URL,
 * so it starts the embedded Postgres in its data directory.
 */
describe('parley serve on the embedded Postgres', () => {
  let dataDir: string;
  let port: number;
  let env: NodeJS.ProcessEnv;
  const children: ChildProcess[] = [];

  beforeAll(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'parley-cli-'));
    port = await freePort();
    env = embeddedPostgresEnv(
      {
        PARLEY_DATA_DIR: dataDir,
        PARLEY_HTTP_PORT: String(port),
        PARLEY_SERVER_NAME: 'cli.test',
        PARLEY_LOG_LEVEL: 'info',
        PARLEY_FEDERATION_PORT: '0',
      },
      ['PARLEY_CONFIG'],
    );
  });
  afterAll(async () => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    const pid = postmasterPid();
    if (pid) process.kill(pid, 'SIGINT');
    await new Promise((r) => setTimeout(r, 500));
    await rm(dataDir, { recursive: true, force: true });
  });

  function postmasterPid(): number | null {
    const file = path.join(dataDir, 'postgres', 'postmaster.pid');
    if (!existsSync(file)) return null;
    const pid = Number(readFileSync(file, 'utf8').split('\n')[0]);
    try {
      process.kill(pid, 0);
      return pid;
    } catch {
      return null;
    }
  }

  function serve(): { child: ChildProcess; output: () => string } {
    const child = spawn(process.execPath, [BIN, 'serve'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
    let out = '';
    child.stdout?.on('data', (d) => {
      out += d;
    });
    child.stderr?.on('data', (d) => {
      out += d;
    });
    return { child, output: () => out };
  }

  async function waitHealthy(output: () => string): Promise<number> {
    const started = Date.now();
    while (Date.now() - started < 90_000) {
      try {
        const res = await fetch(`http://127.0.0.1:${port}/health`);
        if (res.status === 200) return Date.now() - started;
      } catch {
        // not listening yet
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`server never became healthy:\n${output()}`);
  }

  async function exitOf(child: ChildProcess): Promise<number | null> {
    if (child.exitCode !== null) return child.exitCode;
    return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  }

  const cli = (args: string[], stdin?: string) => runNode(BIN, args, { env, input: stdin ?? '' });

  const client = () => new ParleyClient({ baseUrl: `http://127.0.0.1:${port}` });

  it('first start initialises Postgres, migrates, and serves; SIGTERM stops both', async () => {
    const { child, output } = serve();
    const ms = await waitHealthy(output);
    process.stdout.write(`cold start to healthy (including initdb): ${ms} ms\n`);
    const alice = client();
    await alice.register({ username: 'alice', password: 'alice password' });
    expect((await alice.whoami()).user_id).toBe('@alice:cli.test');
    const pgPid = postmasterPid();
    expect(pgPid).toBeGreaterThan(0);

    child.kill('SIGTERM');
    expect(await exitOf(child)).toBe(0);
    expect(postmasterPid()).toBeNull();
    expect(output()).toContain('embedded postgres stopped');
    expect(existsSync(path.join(dataDir, 'parley.pid'))).toBe(false);
    // Logs are JSON lines and never carry the password; the only other lines are the human
    // start and stop lines (on stderr).
    expect(output()).not.toContain('alice password');
    for (const line of output().trim().split('\n')) if (!line.startsWith('Parley ')) expect(() => JSON.parse(line), line).not.toThrow();
    expect(output()).toContain(`Parley is running: open http://localhost:${port}`);
    expect(output()).toContain('Parley stopped cleanly.');
  });

  it('second start reuses the data; CLI commands work beside a running server', async () => {
    const { child, output } = serve();
    const ms = await waitHealthy(output);
    process.stdout.write(`warm start to healthy: ${ms} ms\n`);
    await client().login({ username: 'alice', password: 'alice password' });

    const second = serve();
    expect(await exitOf(second.child)).not.toBe(0);
    expect(second.output()).toContain('another parley serve');

    const created = await cli(['user', 'create', 'root', '--admin', '--password-stdin'], 'root password\n');
    expect(created).toMatchObject({ code: 0, stdout: 'created @root:cli.test (admin)\n' });
    const root = client();
    await root.login({ username: 'root', password: 'root password' });
    expect((await root.whoami()).is_admin).toBe(true);

    const generated = await cli(['user', 'create', 'bob']);
    expect(generated.code).toBe(0);
    const password = /password: (\S+)/.exec(generated.stdout)?.[1] as string;
    await client().login({ username: 'bob', password });

    expect((await cli(['user', 'create', 'bob'])).code).toBe(1);
    expect((await cli(['user', 'create', 'Bad Name'])).code).toBe(2);
    expect((await cli(['user', 'create', 'shorty', '--password-stdin'], 'short\n')).code).toBe(2);

    const token = await cli(['registration-token', 'create', '--uses', '2', '--expires-in', '7d']);
    expect(token.code).toBe(0);
    const listed = await cli(['registration-token', 'list']);
    expect(listed.stdout).toContain(`${token.stdout.trim()}  uses 0/2`);
    expect((await cli(['registration-token', 'create', '--expires-in', 'soon'])).code).toBe(2);
    expect((await cli(['frobnicate'])).code).toBe(2);

    // The CLI attached to the server's Postgres and must not have stopped it.
    expect((await fetch(`http://127.0.0.1:${port}/health`)).status).toBe(200);
    const rss = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))?.[1]);
    process.stdout.write(`idle RSS of parley serve: ${Math.round(rss / 1024)} MiB\n`);
    child.kill('SIGTERM');
    expect(await exitOf(child)).toBe(0);
  });

  it('after kill -9 the next start adopts the orphaned Postgres and loses nothing', async () => {
    const { child, output } = serve();
    await waitHealthy(output);
    const carol = client();
    await carol.register({ username: 'carol', password: 'carol password' });
    child.kill('SIGKILL');
    await exitOf(child);
    expect(postmasterPid()).toBeGreaterThan(0); // Postgres outlived its parent

    const again = serve();
    await waitHealthy(again.output);
    expect(again.output()).toContain('already running; reusing it');
    await client().login({ username: 'carol', password: 'carol password' });
    again.child.kill('SIGTERM');
    expect(await exitOf(again.child)).toBe(0);
    expect(postmasterPid()).toBeNull();
  });

  it('migrate works standalone and refuses a broken config with a clear message', async () => {
    const migrated = await cli(['migrate']);
    expect(migrated).toMatchObject({ code: 0, stdout: 'migrations are current\n' });
    expect(postmasterPid()).toBeNull(); // a CLI command stops the Postgres it started

    const bad = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, [BIN, 'serve'], {
        env: { ...env, PARLEY_HTTP_PORT: 'eighty' },
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let stderr = '';
      child.stderr.on('data', (d) => {
        stderr += d;
      });
      child.on('exit', (code) => resolve({ code, stderr }));
    });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('PARLEY_HTTP_PORT must be an integer');
  });
});
