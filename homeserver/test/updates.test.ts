import { createHash, createPublicKey, generateKeyPairSync, type KeyObject, sign } from 'node:crypto';
import { cp, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import type http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ParleyClient } from '@parley/sdk';
import { Signature } from '@tufjs/models';
import { create as createTar } from 'tar';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyServerUpdate, SERVER_TARGET } from '../src/updates/apply.js';
import { fetchVerifiedTarget } from '../src/updates/mirror.js';
import { ReleaseRepository, tufKey } from '../src/updates/release.js';
import { until } from './support/net.js';
import { startTestServer, type TestServer } from './support/server.js';
import { serveDir } from './support/static-dir.js';

const key = (): KeyObject => generateKeyPairSync('ed25519').privateKey;
const DAY = 86_400_000;
const TARGET = 'client/parley-client.tgz';
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
/** tuf-js's refusal of a file whose bytes are not the signed ones, as our fetcher reports it. */
const hashRefusal = (expected: Buffer, got: Buffer) =>
  `LengthOrHashMismatchError: Expected hash ${sha256(expected)} but got ${sha256(got)}`;

/** A gzipped tar of a built web client (dist/index.html, dist/assets/…) saying `title`. */
async function webBundle(work: string, title: string): Promise<Buffer> {
  const src = await mkdtemp(path.join(work, 'bundle-'));
  await mkdir(path.join(src, 'dist', 'assets'), { recursive: true });
  await writeFile(path.join(src, 'dist', 'index.html'), `<!doctype html><title>${title}</title>`);
  await writeFile(path.join(src, 'dist', 'assets', 'app-1234.js'), `console.log(${JSON.stringify(title)})`);
  const tgz = path.join(src, 'web.tgz');
  await createTar({ gzip: true, file: tgz, cwd: src }, ['dist']);
  return readFile(tgz);
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
  /** Not a mirror: checks releases (through the hostile mirror first, then hs2) for itself. */
  let hs3: TestServer;
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
    expect(await hs3.services.updates.check()).toBe(true);
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
    hs3 = await startTestServer({
      server_name: 'hs3.test',
      updates: { mirror: false, upstreams: [hostile.url, `${hs2.url}/updates`], trusted_root: path.join(work, 'root.json') },
    });
    await until(() => hs3.services.updates.mirror.lastSync !== null);
  });
  afterAll(async () => {
    await hs3?.close();
    await hs2?.close();
    await hs1?.close();
    await upstream?.close();
    await hostile?.close();
    await rm(work, { recursive: true, force: true });
  });

  it('a 2-of-3 signed release flows upstream → mirror → mirror → client; a new release replaces it', async () => {
    expect(repo.signatureCount('root')).toEqual({ valid: 2, threshold: 2 });
    expect(hs2.services.updates.mirror.lastSync?.source).toBe(`${hs1.url}/updates`);
    const swapped = Buffer.from(release1).fill(65, 0, 8);
    expect(hs2.services.updates.mirror.lastFailures).toEqual([{ source: hostile.url, error: hashRefusal(release1, swapped) }]);
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

  it('a server that is not a mirror installs the web client bundle of a verified release, a new release replaces it, and back — no restart', async () => {
    const v3 = await webBundle(work, 'Parley 0.3.0 from the mirrors');
    await repo.addTarget('client/web.tgz', v3, roles, Date.now(), { version: '0.3.0', kind: 'web-client', notes: 'Bundle one' });
    await syncMirrors();
    // hs3 got the release past the hostile mirror (listed first) from hs2, and serves no /updates/ itself.
    expect(hs3.services.updates.mirror.lastSync?.source).toBe(`${hs2.url}/updates`);
    // (The hostile mirror's copy is of release 1: older than what hs3 already trusts.)
    expect(hs3.services.updates.mirror.lastFailures).toEqual([
      {
        source: hostile.url,
        error: expect.stringMatching(/^BadVersionError: New timestamp version \d+ is less than current version \d+$/),
      },
    ]);
    expect((await fetch(`${hs3.url}/updates/metadata/timestamp.json`)).status).toBe(404);

    await hs3.services.accounts.createUser('root', 'root password', true);
    const admin = new ParleyClient({ baseUrl: hs3.url });
    await admin.login({ username: 'root', password: 'root password' });
    const offered = (await admin.request('GET', '/api/v1/admin/updates')) as { release: Array<Record<string, unknown>> };
    expect(offered.release).toContainEqual(expect.objectContaining({ path: 'client/web.tgz', version: '0.3.0', notes: 'Bundle one' }));
    const builtin = await (await fetch(`${hs3.url}/`)).text();
    expect(builtin).not.toContain('from the mirrors');
    await admin.request('PUT', '/api/v1/admin/updates/client', { path: 'client/web.tgz' });
    expect(await (await fetch(`${hs3.url}/`)).text()).toContain('Parley 0.3.0 from the mirrors');
    expect(await (await fetch(`${hs3.url}/assets/app-1234.js`)).text()).toBe('console.log("Parley 0.3.0 from the mirrors")');
    await expect(admin.request('PUT', '/api/v1/admin/updates/client', { path: TARGET })).rejects.toMatchObject({ status: 400 });
    await expect(admin.request('PUT', '/api/v1/admin/updates/client', { path: '../etc/passwd' })).rejects.toMatchObject({ status: 400 });

    // The next release's bundle replaces it when the admin switches to it.
    const v4 = await webBundle(work, 'Parley 0.4.0 from the mirrors');
    await repo.addTarget('client/web.tgz', v4, roles, Date.now(), { version: '0.4.0', kind: 'web-client', notes: 'Bundle two' });
    await syncMirrors();
    // A file changed on disk after verification is refused at switch time.
    const held = path.join(hs3.config.data_dir, 'updates', 'targets', 'client', 'web.tgz');
    await writeFile(held, Buffer.concat([v4, Buffer.from('x')]));
    await expect(admin.request('PUT', '/api/v1/admin/updates/client', { path: 'client/web.tgz' })).rejects.toMatchObject({ status: 400 });
    expect(await (await fetch(`${hs3.url}/`)).text()).toContain('Parley 0.3.0 from the mirrors');
    await writeFile(held, v4);
    expect(await admin.request('PUT', '/api/v1/admin/updates/client', { path: 'client/web.tgz' })).toEqual({
      path: 'client/web.tgz',
      sha256: sha256(v4),
    });
    expect(await (await fetch(`${hs3.url}/`)).text()).toContain('Parley 0.4.0 from the mirrors');
    expect(await (await fetch(`${hs3.url}/assets/app-1234.js`)).text()).toBe('console.log("Parley 0.4.0 from the mirrors")');

    await admin.request('DELETE', '/api/v1/admin/updates/client');
    expect(await (await fetch(`${hs3.url}/`)).text()).toBe(builtin);
    // Each switch that happened (not the refused ones) and the way back are in the audit log.
    const audit = (await admin.request('GET', '/api/v1/admin/audit?action=updates.client')) as {
      entries: Array<{ action: string; target: string | null; details: Record<string, unknown> }>;
    };
    expect(audit.entries.map((e) => [e.action, e.target, e.details.sha256 ?? null])).toEqual([
      ['updates.client_builtin', null, null],
      ['updates.client_switch', 'client/web.tgz', sha256(v4)],
      ['updates.client_switch', 'client/web.tgz', expect.any(String)],
    ]);
    const user = hs3.client();
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
    expect(applied.failures).toEqual([
      { source: hostile.url, error: hashRefusal(await readFile(tgz), Buffer.alloc((await stat(tgz)).size, 7)) },
    ]);
    expect(await readFile(path.join(applied.dir, 'homeserver', 'dist', 'parley.mjs'), 'utf8')).toBe('// parley 0.3.0');
    // Only the hostile mirror: nothing is unpacked.
    await expect(applyServerUpdate(hs2.config, { mirrors: [hostile.url] })).rejects.toThrow(/no mirror served a verified/);
    // Nor can an admin serve the server bundle as the web client.
    const admin = new ParleyClient({ baseUrl: hs3.url });
    await admin.login({ username: 'root', password: 'root password' });
    await expect(admin.request('PUT', '/api/v1/admin/updates/client', { path: SERVER_TARGET })).rejects.toMatchObject({
      status: 400,
      message: `${SERVER_TARGET} is a release file of kind server, not a web client`,
    });
  });

  it('rollback: a mirror serving an older release is refused', async () => {
    const dir = await freshClientDir();
    await client(dir, [honest()]); // trusts release 2
    hostileDir = release1Copy;
    hostileOverride = undefined;
    const got = await client(dir, [hostile.url, honest()]);
    expect(await readFile(got.file)).toEqual(release2);
    const refusal = /^BadVersionError: New timestamp version \d+ is less than current version \d+$/;
    expect(got.failures).toEqual([{ source: hostile.url, error: expect.stringMatching(refusal) }]);
    // A mirror offered the older release (intact, validly signed, not expired) keeps the newer one.
    await expect(hs2.services.updates.mirror.sync([hostile.url])).rejects.toThrow(/BadVersionError: New timestamp version/);
    expect(hs2.services.updates.mirror.lastFailures).toEqual([{ source: hostile.url, error: expect.stringMatching(refusal) }]);
    expect(Buffer.from(await (await fetch(`${honest()}/targets/${TARGET}`)).arrayBuffer())).toEqual(release2);
  });

  it('freeze: an expired timestamp replayed is refused', async () => {
    await hostileCopy(async (d) => {
      const stale = await ReleaseRepository.load(d);
      await stale.refreshTimestamp(roles.timestamp, Date.now() - 3 * DAY); // validly signed, expired two days ago
    });
    const got = await client(await freshClientDir(), [hostile.url, honest()]);
    expect(await readFile(got.file)).toEqual(release2);
    expect(got.failures).toEqual([{ source: hostile.url, error: 'ExpiredMetadataError: Final timestamp.json is expired' }]);
  });

  it('mix-and-match: a snapshot from another release is refused', async () => {
    await hostileCopy(async (d) => {
      await cp(path.join(release1Copy, 'metadata', 'snapshot.json'), path.join(d, 'metadata', 'snapshot.json'));
    });
    const got = await client(await freshClientDir(), [hostile.url, honest()]);
    expect(await readFile(got.file)).toEqual(release2);
    expect(got.failures).toEqual([
      {
        source: hostile.url,
        error: "RuntimeError: Unable to load snapshot metadata error Error: Snapshot version doesn't match timestamp",
      },
    ]);
  });

  /** The hostile mirror serves the real repository but answers `suffix` with 200 MiB of spaces; answers the bytes it got out. */
  const endless = (suffix: string) => {
    const counter = { sent: 0 };
    hostileDir = repoDir;
    hostileOverride = (p, res) => {
      if (!p.endsWith(suffix)) return false;
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      const chunk = Buffer.alloc(64 * 1024, 32);
      const pump = () => {
        while (counter.sent < 200 * 1024 * 1024) {
          counter.sent += chunk.length; // counted as handed to the socket, whether it buffers or not
          if (!res.write(chunk)) return; // until 'drain': the reader has taken what was sent
        }
        res.end();
      };
      res.on('drain', pump);
      res.on('close', () => res.off('drain', pump));
      pump();
      return true;
    };
    return counter;
  };

  it('endless data: an oversized metadata file is cut off and refused', async () => {
    const counter = endless('/timestamp.json');
    const got = await client(await freshClientDir(), [hostile.url, honest()]);
    expect(await readFile(got.file)).toEqual(release2);
    expect(got.failures).toEqual([{ source: hostile.url, error: 'DownloadLengthMismatchError: Max length reached' }]);
    expect(counter.sent).toBeLessThan(16 * 1024 * 1024); // about 4 MiB of the 200: what the sockets buffered
    hostileOverride = undefined;
  });

  it('endless data: a target longer than its signed length is cut off and refused', async () => {
    const counter = endless(`/targets/${TARGET}`);
    const got = await client(await freshClientDir(), [hostile.url, honest()]);
    expect(await readFile(got.file)).toEqual(release2);
    expect(got.failures).toEqual([{ source: hostile.url, error: 'DownloadLengthMismatchError: Max length reached' }]);
    expect(counter.sent).toBeLessThan(16 * 1024 * 1024); // about 4 MiB of the 200: what the sockets buffered
    // A mirror fetching from it is cut off the same way and keeps serving the verified release.
    const before = hs1.services.updates.mirror.lastSync;
    await expect(hs1.services.updates.mirror.sync([hostile.url])).rejects.toThrow(
      `no source passed verification: ${hostile.url}: DownloadLengthMismatchError: Max length reached`,
    );
    expect(hs1.services.updates.mirror.lastSync).toBe(before);
    expect(Buffer.from(await (await fetch(`${hs1.url}/updates/targets/${TARGET}`)).arrayBuffer())).toEqual(release2);
    hostileOverride = undefined;
  });

  it('arbitrary software: changed target bytes are refused', async () => {
    const evil = Buffer.from(release2);
    evil.write('EVIL', 0);
    await hostileCopy(async (d) => {
      await writeFile(path.join(d, 'targets', TARGET), evil);
    });
    const got = await client(await freshClientDir(), [hostile.url, honest()]);
    expect(await readFile(got.file)).toEqual(release2);
    expect(got.failures).toEqual([{ source: hostile.url, error: hashRefusal(release2, evil) }]);
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
    expect(got.failures).toEqual([{ source: hostile.url, error: 'UnsignedMetadataError: root was signed by 1/2 keys' }]);
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
    expect(got.failures).toEqual([{ source: hostile.url, error: 'UnsignedMetadataError: timestamp was signed by 0/1 keys' }]);
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
    expect(attacked.failures).toEqual([{ source: hostile.url, error: 'UnsignedMetadataError: root was signed by 0/2 keys' }]);
  });
});

/** Signs as an attacker holding `k` would: outside the repository's own checks. */
function signerOf(k: KeyObject) {
  return (data: Buffer) => new Signature({ keyID: tufKey(k).keyID, sig: sign(null, data, k).toString('hex') });
}

function rolesOf(r: { targets: KeyObject; snapshot: KeyObject; timestamp: KeyObject }) {
  return { targetsKey: createPublicKey(r.targets), snapshotKey: createPublicKey(r.snapshot), timestampKey: createPublicKey(r.timestamp) };
}
