import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, openSync, readFileSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { downloadMedia, ParleyClient, RoomsApi, uploadMedia } from '@parley/sdk';
import { Agent, fetch as undiciFetch } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from './support/net.js';
import { embeddedPostgresEnv, runNode } from './support/run-node.js';

const BIN = fileURLToPath(new URL('../bin/parley.mjs', import.meta.url));

/**
 * The operator guide's backup and restore, as an operator runs them: `parley backup` from the
 * command line beside a running `parley serve` on the embedded Postgres (the README's one-command
 * server) while it takes messages, then `parley restore` into a new data directory and a
 * `parley serve` there: same accounts, messages, media, signing key and TLS certificate.
 * (backup-restore.test.ts covers the same in-process, with a federating peer.)
 */
describe('parley backup and parley restore from the command line (embedded Postgres)', () => {
  let root: string;
  let env: NodeJS.ProcessEnv;
  let port: number;
  let fedPort: number;
  const children: ChildProcess[] = [];
  const dataA = () => path.join(root, 'a');
  const dataB = () => path.join(root, 'b');
  const backupDir = () => path.join(root, 'backup');

  beforeAll(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'parley-backup-cli-'));
    // Run as root, the embedded Postgres runs as "postgres" and must be able to pass through.
    await chmod(root, 0o711);
    [port, fedPort] = [await freePort(), await freePort()];
    await writeFile(
      path.join(root, 'parley.yaml'),
      'server_name: backup.test\nrate_limits: { enabled: false }\nauth: { argon2: { memory_kib: 8192, iterations: 1, parallelism: 1 } }\n',
    );
    env = embeddedPostgresEnv(
      {
        PARLEY_CONFIG: path.join(root, 'parley.yaml'),
        PARLEY_HTTP_PORT: String(port),
        PARLEY_FEDERATION_PORT: String(fedPort),
        PARLEY_LOG_LEVEL: 'warn',
      },
      ['PARLEY_SERVER_NAME'],
    );
  });
  afterAll(async () => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 3000));
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    for (const dir of [dataA(), dataB()]) {
      const pidFile = path.join(dir, 'postgres', 'postmaster.pid');
      if (existsSync(pidFile)) {
        try {
          process.kill(Number(readFileSync(pidFile, 'utf8').split('\n')[0]), 'SIGINT');
        } catch {
          // already gone
        }
      }
    }
    await new Promise((r) => setTimeout(r, 500));
    await rm(root, { recursive: true, force: true });
  });

  async function serve(dataDir: string): Promise<ChildProcess> {
    const log = openSync(path.join(root, `serve-${path.basename(dataDir)}.log`), 'a');
    const child = spawn(process.execPath, [BIN, 'serve'], { env: { ...env, PARLEY_DATA_DIR: dataDir }, stdio: ['ignore', log, log] });
    children.push(child);
    for (const started = Date.now(); Date.now() - started < 120_000; ) {
      if (child.exitCode !== null) break;
      if (
        await fetch(`http://127.0.0.1:${port}/health`).then(
          (r) => r.ok,
          () => false,
        )
      )
        return child;
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error(`parley serve did not start:\n${readFileSync(path.join(root, `serve-${path.basename(dataDir)}.log`), 'utf8')}`);
  }
  const stop = (child: ChildProcess) =>
    new Promise<number | null>((resolve) => {
      if (child.exitCode !== null) resolve(child.exitCode);
      child.once('exit', (code) => resolve(code));
      child.kill('SIGTERM');
    });
  const cli = (dataDir: string, args: string[]) => runNode(BIN, args, { env: { ...env, PARLEY_DATA_DIR: dataDir } });
  const keyDocument = async () =>
    (await (
      await undiciFetch(`https://127.0.0.1:${fedPort}/federation/v1/keys`, {
        dispatcher: new Agent({ connect: { rejectUnauthorized: false } }),
      })
    ).json()) as { server_name: string; verify_keys: Record<string, unknown>; tls_fingerprints: unknown };

  it('backs up a serving server with traffic and restores it elsewhere as the same server', async () => {
    const a = await serve(dataA());
    const alice = new ParleyClient({ baseUrl: `http://127.0.0.1:${port}` });
    await alice.register({ username: 'alice', password: 'alice password' });
    const rooms = new RoomsApi(alice);
    const { room_id: roomId } = await rooms.create({ visibility: 'public', name: 'Kept' });
    for (let i = 0; i < 20; i++) await rooms.sendText(roomId, `before ${i}`);
    const picture = new Uint8Array(Array.from({ length: 70_000 }, (_, i) => (i * 7) % 251));
    const { content_uri: mediaUri } = await uploadMedia(alice, picture, { filename: 'p.bin', contentType: 'application/octet-stream' });
    const keysBefore = await keyDocument();

    // The backup runs beside the server while it keeps acknowledging sends.
    let sending = true;
    let during = 0;
    const traffic = (async () => {
      while (sending) await rooms.sendText(roomId, `during ${during++}`);
    })();
    const backedUp = await cli(dataA(), ['backup', backupDir()]);
    sending = false;
    await traffic;
    expect(backedUp.stderr).toBe('');
    expect(backedUp).toMatchObject({ code: 0 });
    expect(backedUp.stdout).toMatch(/^backed up \d+ rows of \d+ tables and \d+ files \([\d.]+ MiB\) to .* in [\d.]+ s\n$/);
    expect(during).toBeGreaterThan(0);
    expect(readFileSync(path.join(backupDir(), 'config/parley.yaml'), 'utf8')).toContain('server_name: backup.test');
    // The CLI attached to the server's embedded Postgres and left it running.
    expect((await fetch(`http://127.0.0.1:${port}/health`)).status).toBe(200);
    expect(await stop(a)).toBe(0);

    // A refusal first: a backup directory that is not a backup.
    await mkdir(path.join(root, 'empty'));
    const refused = await cli(dataB(), ['restore', path.join(root, 'empty')]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/holds no manifest\.json/);

    const restored = await cli(dataB(), ['restore', backupDir()]);
    expect(restored.stderr).toBe('');
    expect(restored).toMatchObject({ code: 0 });
    expect(restored.stdout).toMatch(/^restored \d+ rows of \d+ tables and \d+ files into .* in [\d.]+ s\n/);
    expect(restored.stdout).toContain(`the configuration file it was taken with is ${path.join(backupDir(), 'config/parley.yaml')}`);
    console.log(
      `backup-cli figures (${during} sends acknowledged during the backup): ${backedUp.stdout.trim()}; ${restored.stdout.split('\n')[0]}`,
    );
    // Restoring twice into the same place is refused.
    expect((await cli(dataB(), ['restore', backupDir()])).code).toBe(1);

    await serve(dataB());
    const again = new ParleyClient({ baseUrl: `http://127.0.0.1:${port}` });
    await again.login({ username: 'alice', password: 'alice password' });
    const bodies: string[] = [];
    let from: string | undefined;
    for (;;) {
      const page = await new RoomsApi(again).messages(roomId, { limit: 100, dir: 'f', ...(from ? { from } : {}) });
      for (const e of page.chunk) if (typeof e.content.body === 'string') bodies.push(e.content.body);
      if (!page.end) break;
      from = page.end;
    }
    expect(bodies.slice(0, 20)).toEqual(Array.from({ length: 20 }, (_, i) => `before ${i}`));
    const rest = bodies.slice(20);
    expect(rest).toEqual(rest.map((_, i) => `during ${i}`)); // one snapshot: a prefix, no holes
    expect(Buffer.from((await downloadMedia(again, mediaUri)).data).equals(Buffer.from(picture))).toBe(true);
    // Same signing keys and TLS certificate: peers need not pin again.
    const keysAfter = await keyDocument();
    expect(keysAfter.server_name).toBe('backup.test');
    expect(keysAfter.verify_keys).toEqual(keysBefore.verify_keys);
    expect(keysAfter.tls_fingerprints).toEqual(keysBefore.tls_fingerprints);
  }, 300_000);
});
