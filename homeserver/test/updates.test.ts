import { createPublicKey, generateKeyPairSync, type KeyObject, sign } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ParleyClient } from '@parley/sdk';
import { Signature } from '@tufjs/models';
import { create as createTar } from 'tar';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyServerUpdate, SERVER_TARGET } from '../src/updates/apply.js';
import { fetchVerifiedTarget } from '../src/updates/mirror.js';
import { ReleaseRepository, tufKey } from '../src/updates/release.js';
import { runRelease } from '../src/updates/release-cli.js';
import { until } from './support/net.js';
import { startTestServer, type TestServer } from './support/server.js';

const key = (): KeyObject => generateKeyPairSync('ed25519').privateKey;
const DAY = 86_400_000;
const TARGET = 'client/parley-client.tgz';

/** A plain file server for a repository directory; `override` answers some paths itself. */
async function serveDir(
  dir: () => string,
  override?: (urlPath: string, res: http.ServerResponse) => boolean,
): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer(async (req, res) => {
    const urlPath = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    if (override?.(urlPath, res)) return;
    const file = path.join(dir(), urlPath);
    if (!file.startsWith(dir()) || !existsSync(file) || !(await stat(file)).isFile()) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    createReadStream(file).pipe(res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/**
 * Parley releases as a TUF repository, mirrored by real homeservers and fetched by a tuf-js
 * client that fails over across mirrors. Every attack comes from a hostile mirror listed
 * first; the honest mirror behind it must still serve the right bytes, and the hostile one's
 * refusal is the one TUF prescribes.
 */
describe('signed update mirrors (TUF)', () => {
  let work: string;
  let repoDir: string;
  let repo: ReleaseRepository;
  const root = [key(), key(), key()];
  const roles = { targets: key(), snapshot: key(), timestamp: key() };
  let upstream: Awaited<ReturnType<typeof serveDir>>;
  let hs1: TestServer;
  let hs2: TestServer;
  let trustedRoot: Buffer;
  let hostileDir = '';
  let hostileOverride: ((p: string, res: http.ServerResponse) => boolean) | undefined;
  let hostile: Awaited<ReturnType<typeof serveDir>>;
  const release1 = Buffer.from('parley web client 0.2.0\n'.repeat(100));
  const release2 = Buffer.from('parley web client 0.3.0\n'.repeat(100));
  let release1Copy: string;

  const client = async (metadataDir: string, mirrors: string[]) =>
    fetchVerifiedTarget({ metadataDir, trustedRoot, mirrors, target: TARGET, into: path.join(metadataDir, '..', `out-${Date.now()}`) });
  const freshClientDir = () => mkdtemp(path.join(work, 'client-'));
  const syncMirrors = async () => {
    expect(await hs1.services.updates.check()).toBe(true);
    expect(await hs2.services.updates.check()).toBe(true);
  };
  const honest = () => `${hs2.url}/updates`;
  /** A hostile mirror serving a copy of the real repository, changed by `mutate`. */
  const hostileCopy = async (mutate: (dir: string) => Promise<void>) => {
    hostileDir = await mkdtemp(path.join(work, 'hostile-'));
    await cp(repoDir, hostileDir, { recursive: true });
    await mutate(hostileDir);
    hostileOverride = undefined;
  };

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'parley-updates-'));
    repoDir = path.join(work, 'repo');
    repo = await ReleaseRepository.init(repoDir, { rootKeys: root.map((k) => k), threshold: 2, ...rolesOf(roles), now: Date.now() });
    // 2 of 3 root keys sign; the third holder is away.
    repo.sign('root', root[0] as KeyObject);
    repo.sign('root', root[1] as KeyObject);
    await repo.save();
    await repo.addTarget(TARGET, release1, roles, Date.now(), { version: '0.2.0', notes: 'First release' });
    release1Copy = path.join(work, 'release1-copy');
    await cp(repoDir, release1Copy, { recursive: true });
    trustedRoot = await readFile(path.join(repoDir, 'metadata', '1.root.json'));
    await writeFile(path.join(work, 'root.json'), trustedRoot);

    upstream = await serveDir(() => repoDir);
    // Until a test arms it otherwise, the hostile mirror serves the release with its file swapped.
    await hostileCopy(async (d) => {
      await writeFile(path.join(d, 'targets', TARGET), Buffer.from(release1).fill(65, 0, 8));
    });
    hostile = await serveDir(
      () => hostileDir || repoDir,
      (p, res) => hostileOverride?.(p, res) ?? false,
    );
    const updates = (upstreams: string[]) => ({
      updates: { mirror: true, upstreams, trusted_root: path.join(work, 'root.json'), check_interval_ms: 3_600_000 },
    });
    hs1 = await startTestServer(updates([upstream.url]));
    await until(() => hs1.services.updates.mirror.lastSync !== null);
    // The second mirror lists the hostile one first: it must still end up with the real release.
    hs2 = await startTestServer({ server_name: 'hs2.test', ...updates([hostile.url, `${hs1.url}/updates`]) });
    await until(() => hs2.services.updates.mirror.lastSync !== null);
  });
  afterAll(async () => {
    await hs2?.close();
    await hs1?.close();
    await upstream?.close();
    await hostile?.close();
    await rm(work, { recursive: true, force: true });
  });

  it('a 2-of-3 signed release flows upstream → mirror → mirror → client; a new release replaces it', async () => {
    expect(repo.signatureCount('root')).toEqual({ valid: 2, threshold: 2 });
    expect(hs2.services.updates.mirror.lastSync?.source).toBe(`${hs1.url}/updates`);
    expect(hs2.services.updates.mirror.lastFailures).toEqual([{ source: hostile.url, error: expect.stringMatching(/hash|length/i) }]);
    const dir = await freshClientDir();
    const got = await client(dir, [honest()]);
    expect(await readFile(got.file)).toEqual(release1);

    await repo.addTarget(TARGET, release2, roles, Date.now(), { version: '0.3.0', notes: 'Second release' });
    await syncMirrors();
    const again = await client(dir, [honest()]);
    expect(await readFile(again.file)).toEqual(release2);
    const status = (await hs2.services.updates.status()) as { release: Array<{ path: string; version: string; notes: string }> };
    expect(status.release).toEqual([expect.objectContaining({ path: TARGET, version: '0.3.0', notes: 'Second release' })]);
    // The mirror serves over HTTP what it verified.
    const served = await fetch(`${honest()}/targets/${TARGET}`);
    expect(Buffer.from(await served.arrayBuffer())).toEqual(release2);
    expect((await fetch(`${honest()}/targets/..%2F..%2Fkeys%2Fed25519.key`)).status).toBe(404);
    expect((await fetch(`${honest()}/metadata/..%2Froot.json`)).status).toBe(404);
  });

  it('an admin switches the served web client to a verified release bundle and back, without a restart', async () => {
    const src = await mkdtemp(path.join(work, 'bundle-'));
    await mkdir(path.join(src, 'dist', 'assets'), { recursive: true });
    await writeFile(path.join(src, 'dist', 'index.html'), '<!doctype html><title>Parley 0.3.0 from the mirror</title>');
    await writeFile(path.join(src, 'dist', 'assets', 'app-1234.js'), 'console.log(1)');
    const tgz = path.join(work, 'web.tgz');
    await createTar({ gzip: true, file: tgz, cwd: src }, ['dist']);
    await repo.addTarget('client/web.tgz', await readFile(tgz), roles, Date.now(), { version: '0.3.0', kind: 'web-client' });
    await syncMirrors();

    await hs2.services.accounts.createUser('root', 'root password', true);
    const admin = new ParleyClient({ baseUrl: hs2.url });
    await admin.login({ username: 'root', password: 'root password' });
    const before = await (await fetch(`${hs2.url}/`)).text();
    expect(before).not.toContain('from the mirror');
    await admin.request('PUT', '/api/v1/admin/updates/client', { path: 'client/web.tgz' });
    expect(await (await fetch(`${hs2.url}/`)).text()).toContain('Parley 0.3.0 from the mirror');
    expect(await (await fetch(`${hs2.url}/assets/app-1234.js`)).text()).toBe('console.log(1)');
    await expect(admin.request('PUT', '/api/v1/admin/updates/client', { path: TARGET })).rejects.toMatchObject({ status: 400 });
    await expect(admin.request('PUT', '/api/v1/admin/updates/client', { path: '../etc/passwd' })).rejects.toMatchObject({ status: 400 });
    // A file changed on disk after verification is refused at switch time.
    const held = path.join(hs2.config.data_dir, 'updates', 'targets', 'client', 'web.tgz');
    const original = await readFile(held);
    await writeFile(held, Buffer.concat([original, Buffer.from('x')]));
    await expect(admin.request('PUT', '/api/v1/admin/updates/client', { path: 'client/web.tgz' })).rejects.toMatchObject({ status: 400 });
    await writeFile(held, original);
    await admin.request('DELETE', '/api/v1/admin/updates/client');
    expect(await (await fetch(`${hs2.url}/`)).text()).not.toContain('from the mirror');
    const user = hs2.client();
    await user.register({ username: 'plain', password: 'plain password' });
    await expect(user.request('PUT', '/api/v1/admin/updates/client', { path: 'client/web.tgz' })).rejects.toMatchObject({ status: 403 });
  });

  it('parley update apply: a server bundle is fetched through the mirrors, verified, and only then unpacked', async () => {
    const src = await mkdtemp(path.join(work, 'server-'));
    await mkdir(path.join(src, 'parley', 'homeserver', 'dist'), { recursive: true });
    await writeFile(path.join(src, 'parley', 'homeserver', 'dist', 'parley.mjs'), '// parley 0.3.0');
    const tgz = path.join(work, 'server.tgz');
    await createTar({ gzip: true, file: tgz, cwd: src }, ['parley']);
    await repo.addTarget(SERVER_TARGET, await readFile(tgz), roles, Date.now(), { version: '0.3.0', kind: 'server' });
    await syncMirrors();
    // The hostile mirror swaps the bundle for its own.
    await hostileCopy(async (d) => {
      await writeFile(path.join(d, 'targets', SERVER_TARGET), Buffer.alloc((await stat(tgz)).size, 7));
    });
    const applied = await applyServerUpdate(hs2.config, { mirrors: [hostile.url, honest()] });
    expect(applied.mirror).toBe(honest());
    expect(applied.failures[0]?.error).toMatch(/hash|length/i);
    expect(await readFile(path.join(applied.dir, 'homeserver', 'dist', 'parley.mjs'), 'utf8')).toBe('// parley 0.3.0');
    // Only the hostile mirror: nothing is unpacked.
    await expect(applyServerUpdate(hs2.config, { mirrors: [hostile.url] })).rejects.toThrow(/no mirror served a verified/);
  });

  it('rollback: a mirror serving an older release is refused', async () => {
    const dir = await freshClientDir();
    await client(dir, [honest()]); // trusts release 2
    hostileDir = release1Copy;
    hostileOverride = undefined;
    const got = await client(dir, [hostile.url, honest()]);
    expect(await readFile(got.file)).toEqual(release2);
    expect(got.failures[0]?.error).toMatch(/BadVersionError|version/i);
  });

  it('freeze: an expired timestamp replayed is refused', async () => {
    await hostileCopy(async (d) => {
      const stale = await ReleaseRepository.load(d);
      await stale.refreshTimestamp(roles.timestamp, Date.now() - 3 * DAY); // validly signed, expired two days ago
    });
    const got = await client(await freshClientDir(), [hostile.url, honest()]);
    expect(await readFile(got.file)).toEqual(release2);
    expect(got.failures[0]?.error).toMatch(/timestamp\.json is expired/);
  });

  it('mix-and-match: a snapshot from another release is refused', async () => {
    await hostileCopy(async (d) => {
      await cp(path.join(release1Copy, 'metadata', 'snapshot.json'), path.join(d, 'metadata', 'snapshot.json'));
    });
    const got = await client(await freshClientDir(), [hostile.url, honest()]);
    expect(await readFile(got.file)).toEqual(release2);
    expect(got.failures[0]?.error).toMatch(/BadVersionError|version/i);
  });

  it('endless data: an oversized metadata file is cut off and refused', async () => {
    let sent = 0;
    hostileDir = repoDir;
    hostileOverride = (p, res) => {
      if (!p.endsWith('/timestamp.json')) return false;
      res.writeHead(200, { 'content-type': 'application/json' });
      const chunk = Buffer.alloc(64 * 1024, 32);
      const pump = () => {
        while (sent < 200 * 1024 * 1024 && res.write(chunk)) sent += chunk.length;
        if (sent >= 200 * 1024 * 1024) res.end();
      };
      res.on('drain', pump);
      res.on('close', () => res.off('drain', pump));
      pump();
      return true;
    };
    const got = await client(await freshClientDir(), [hostile.url, honest()]);
    expect(await readFile(got.file)).toEqual(release2);
    expect(got.failures[0]?.error).toMatch(/DownloadLengthMismatchError|exceed|length/i);
    expect(sent).toBeLessThan(50 * 1024 * 1024);
    hostileOverride = undefined;
  });

  it('arbitrary software: changed target bytes are refused', async () => {
    await hostileCopy(async (d) => {
      const evil = Buffer.from(release2);
      evil.write('EVIL', 0);
      await writeFile(path.join(d, 'targets', TARGET), evil);
    });
    const got = await client(await freshClientDir(), [hostile.url, honest()]);
    expect(await readFile(got.file)).toEqual(release2);
    expect(got.failures[0]?.error).toMatch(/hash|digest|length/i);
  });

  it('below threshold: a new root signed by one of three root keys is refused', async () => {
    await hostileCopy(async (d) => {
      const forged = await ReleaseRepository.load(d);
      forged.rotateRoot({ rootKeys: [key()], threshold: 1 }, Date.now());
      forged.sign('root', root[0] as KeyObject); // one of the old threshold of two
      await forged.save();
    });
    const got = await client(await freshClientDir(), [hostile.url, honest()]);
    expect(await readFile(got.file)).toEqual(release2);
    expect(got.failures[0]?.error).toMatch(/root was signed by 1\/2 keys/);
  });

  it('a compromised timestamp key, rotated out through root, signs nothing clients accept', async () => {
    const compromised = roles.timestamp;
    const dir = await freshClientDir();
    await client(dir, [honest()]);
    // Root v2 replaces the timestamp key; signed by the old and the new root threshold (same keys here).
    roles.timestamp = key();
    repo.rotateRoot({ rootKeys: root, threshold: 2, timestampKey: roles.timestamp }, Date.now());
    repo.sign('root', root[0] as KeyObject);
    repo.sign('root', root[2] as KeyObject);
    await repo.save();
    await repo.refreshTimestamp(roles.timestamp, Date.now());
    await syncMirrors();
    // The attacker holds the old timestamp key and signs a newer timestamp with it.
    await hostileCopy(async (d) => {
      const evil = await ReleaseRepository.load(d);
      evil.timestamp.signatures = {};
      const ts = evil.timestamp.signed as unknown as { version: number };
      Object.assign(ts, { version: ts.version + 10 });
      evil.timestamp.sign(signerOf(compromised));
      await evil.save();
    });
    const got = await client(dir, [hostile.url, honest()]);
    expect(await readFile(got.file)).toEqual(release2);
    expect(got.failures[0]?.error).toMatch(/timestamp was signed by 0\/1 keys/);
  });

  it('root rotation: clients follow the chain, and the old root keys alone can no longer sign', async () => {
    const newRoot = [key(), key(), key()];
    repo.rotateRoot({ rootKeys: newRoot, threshold: 2 }, Date.now());
    repo.sign('root', root[0] as KeyObject);
    repo.sign('root', root[1] as KeyObject);
    repo.sign('root', newRoot[0] as KeyObject);
    repo.sign('root', newRoot[1] as KeyObject);
    await repo.save();
    await repo.refreshTimestamp(roles.timestamp, Date.now());
    await syncMirrors();
    const dir = await freshClientDir();
    const got = await client(dir, [honest()]);
    expect(await readFile(got.file)).toEqual(release2);
    const trusted = JSON.parse(await readFile(path.join(dir, 'root.json'), 'utf8')) as { signed: { version: number } };
    expect(trusted.signed.version).toBe(3);

    // The old root keys sign a root v4 on their own: refused by clients that follow v3.
    await hostileCopy(async (d) => {
      const rogue = await ReleaseRepository.load(d);
      rogue.rotateRoot({ rootKeys: [root[0] as KeyObject], threshold: 1 }, Date.now());
      rogue.root.signatures = {};
      for (const k of [root[0], root[1]] as KeyObject[]) rogue.root.sign(signerOf(k));
      await rogue.save();
    });
    const attacked = await client(dir, [hostile.url, honest()]);
    expect(await readFile(attacked.file)).toEqual(release2);
    expect(attacked.failures[0]?.error).toMatch(/root was signed by 0\/2 keys/);
  });
});

/** Signs as an attacker holding `k` would: outside the repository's own checks. */
function signerOf(k: KeyObject) {
  return (data: Buffer) => new Signature({ keyID: tufKey(k).keyID, sig: sign(null, data, k).toString('hex') });
}

function rolesOf(r: { targets: KeyObject; snapshot: KeyObject; timestamp: KeyObject }) {
  return { targetsKey: createPublicKey(r.targets), snapshotKey: createPublicKey(r.snapshot), timestampKey: createPublicKey(r.timestamp) };
}

describe('parley release: the release manager’s commands', () => {
  it('keys, a 2-of-3 root signed by two holders, a release, a timestamp, a root rotation — and a client installs it', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'parley-release-cli-'));
    try {
      const lines: string[] = [];
      const run = (...args: string[]) => runRelease(args, (s) => lines.push(s));
      const k = (name: string) => path.join(dir, `${name}.pem`);
      for (const name of ['r1', 'r2', 'r3', 'r4', 'targets', 'snapshot', 'timestamp']) expect(await run('keygen', k(name))).toBe(0);
      expect((await stat(k('r1'))).mode & 0o777).toBe(0o600);
      await expect(run('keygen', k('r1'))).rejects.toThrow(/EEXIST/); // never overwrites a key
      const repo = path.join(dir, 'repo');
      const roleKeys = ['--targets-key', k('targets'), '--snapshot-key', k('snapshot'), '--timestamp-key', k('timestamp')];
      expect(
        await run('init', repo, '--root-key', k('r1'), '--root-key', k('r2'), '--root-key', k('r3'), '--threshold', '2', ...roleKeys),
      ).toBe(0);
      expect(await run('sign', repo, 'root', '--key', k('r1'))).toBe(0);
      lines.length = 0;
      await run('status', repo);
      expect(lines.join('')).toMatch(/^root +v1 .* signatures 1\/2 {2}NOT ENOUGH$/m);
      expect(await run('sign', repo, 'root', '--key', k('r2'))).toBe(0);
      await expect(run('sign', repo, 'root', '--key', k('targets'))).rejects.toThrow(/not a root key/);
      const bundle = path.join(dir, 'client.tgz');
      await writeFile(bundle, 'the web client, release 1');
      expect(await run('add', repo, bundle, '--path', 'client.tgz', '--release-version', '1.0.0', '--notes', 'First', ...roleKeys)).toBe(0);
      expect(await run('timestamp', repo, '--key', k('timestamp'))).toBe(0);
      // Rotate to r2, r3, r4 with threshold 2: the old holders r1+r2 and the new r3+r4 sign.
      expect(await run('rotate-root', repo, '--root-key', k('r2'), '--root-key', k('r3'), '--root-key', k('r4'), '--threshold', '2')).toBe(
        0,
      );
      for (const holder of ['r1', 'r2', 'r3', 'r4']) expect(await run('sign', repo, 'root', '--key', k(holder))).toBe(0);
      lines.length = 0;
      await run('status', repo);
      expect(lines.join('')).not.toMatch(/NOT ENOUGH/);
      expect(lines.join('')).toMatch(/^root +v2 /m);
      expect(lines.join('')).toMatch(/target client\.tgz .*"version":"1\.0\.0"/);

      const site = await serveDir(() => repo);
      try {
        const clientDir = path.join(dir, 'client-metadata');
        const got = await fetchVerifiedTarget({
          metadataDir: clientDir,
          trustedRoot: await readFile(path.join(repo, 'metadata', '1.root.json')),
          mirrors: [site.url],
          target: 'client.tgz',
          into: path.join(dir, 'installed.tgz'),
        });
        expect(await readFile(got.file, 'utf8')).toBe('the web client, release 1');
        expect(JSON.parse(await readFile(path.join(clientDir, 'root.json'), 'utf8')).signed.version).toBe(2);
      } finally {
        await site.close();
      }
      expect(await run('frobnicate')).toBe(2);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('mirrors found through bootstrap lists', () => {
  it('a server with no upstream syncs from a mirror it learned of in the bootstrap list, over federation', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'parley-updates-bootstrap-'));
    const keys = { root: key(), targets: key(), snapshot: key(), timestamp: key() };
    const repo = await ReleaseRepository.init(path.join(dir, 'repo'), {
      rootKeys: [keys.root],
      threshold: 1,
      targetsKey: keys.targets,
      snapshotKey: keys.snapshot,
      timestampKey: keys.timestamp,
      now: Date.now(),
    });
    repo.sign('root', keys.root);
    await repo.save();
    await repo.addTarget(TARGET, Buffer.from('bundle via bootstrap'), keys, Date.now());
    await writeFile(path.join(dir, 'root.json'), await readFile(path.join(dir, 'repo', 'metadata', '1.root.json')));
    const site = await serveDir(() => path.join(dir, 'repo'));
    const { startFederation } = await import('./support/federation.js');
    const fed = await startFederation(['m1.test', 'm2.test'], {
      overrides: (name) => ({
        updates: { mirror: true, upstreams: name === 'm1.test' ? [site.url] : [], trusted_root: path.join(dir, 'root.json') },
        bootstrap:
          name === 'm1.test'
            ? { announce: true, capabilities: ['mirror'], pull_interval_ms: 1000 }
            : { seeds: ['m1.test'], pull_interval_ms: 1000 },
      }),
    });
    try {
      const [m1, m2] = fed.servers as [(typeof fed.servers)[0], (typeof fed.servers)[0]];
      await until(() => m1.running.services.updates.mirror.lastSync !== null);
      await until(() => m2.running.services.updates.sources().includes('parley-fed://m1.test/updates'), 20_000);
      expect(await m2.running.services.updates.check()).toBe(true);
      expect(m2.running.services.updates.mirror.lastSync?.source).toBe('parley-fed://m1.test/updates');
      const served = await fetch(`${m2.url}/updates/targets/${TARGET}`);
      expect(await served.text()).toBe('bundle via bootstrap');
    } finally {
      await fed.close();
      await site.close();
      await rm(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
