import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { create as createTar } from 'tar';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SERVER_TARGET } from '../src/updates/apply.js';
import { createReleaseRepository } from './support/release-repo.js';
import { runNode } from './support/run-node.js';
import { serveDir } from './support/static-dir.js';

const BIN = fileURLToPath(new URL('../bin/parley.mjs', import.meta.url));
const BUILD_RELEASE = fileURLToPath(new URL('../../scripts/build-release.mjs', import.meta.url));

/** The operator's commands as processes: `parley update apply`, and build-release's fallback-list check. */
describe('release commands as the operator runs them', () => {
  let work: string;
  const sites: Array<{ url: string; close(): Promise<void> }> = [];

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'parley-update-commands-'));
  });
  afterAll(async () => {
    for (const s of sites) await s.close();
    await rm(work, { recursive: true, force: true });
  });

  it('parley update apply: verified through a hostile mirror listed first, then unpacked; from the hostile one alone, nothing', async () => {
    const repoDir = path.join(work, 'repo');
    const { repo, keys } = await createReleaseRepository(repoDir, { trustedRoot: path.join(work, 'root.json') });
    await mkdir(path.join(work, 'src', 'parley', 'homeserver', 'dist'), { recursive: true });
    await writeFile(path.join(work, 'src', 'parley', 'homeserver', 'dist', 'parley.mjs'), '// parley 9.9.9');
    await createTar({ gzip: true, file: path.join(work, 'server.tgz'), cwd: path.join(work, 'src') }, ['parley']);
    const bundle = await readFile(path.join(work, 'server.tgz'));
    await repo.addTarget(SERVER_TARGET, bundle, keys, Date.now(), { version: '9.9.9', kind: 'server' });
    const hostileDir = path.join(work, 'hostile');
    await cp(repoDir, hostileDir, { recursive: true });
    await writeFile(path.join(hostileDir, 'targets', SERVER_TARGET), Buffer.alloc(bundle.length, 9));
    const site = await serveDir(() => repoDir);
    const hostile = await serveDir(() => hostileDir);
    sites.push(site, hostile);
    const config = async (name: string, upstreams: string[]) => {
      const file = path.join(work, `${name}.yaml`);
      const updates = { upstreams, trusted_root: path.join(work, 'root.json') };
      await writeFile(file, JSON.stringify({ server_name: `${name}.test`, data_dir: path.join(work, name), updates }));
      return file;
    };

    const ok = await runNode(BIN, ['update', 'apply', '--config', await config('a', [hostile.url, site.url])]);
    expect(ok.stderr).toContain(`parley: refused ${hostile.url}: LengthOrHashMismatchError: Expected hash `);
    const into = /verified and unpacked from (\S+) into (\S+)\n/.exec(ok.stdout);
    expect([ok.code, into?.[1]]).toEqual([0, site.url]);
    expect(await readFile(path.join(into?.[2] ?? '', 'homeserver', 'dist', 'parley.mjs'), 'utf8')).toBe('// parley 9.9.9');

    const refused = await runNode(BIN, ['update', 'apply', '--config', await config('b', [hostile.url])]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(`no mirror served a verified ${SERVER_TARGET}: ${hostile.url}: LengthOrHashMismatchError`);
    await expect(readFile(path.join(work, 'b', 'releases', 'metadata', 'timestamp.json'))).rejects.toThrow(/ENOENT/);
  });

  it('build-release refuses a fallback list that is not {descriptors: [...]} before building anything', async () => {
    for (const [name, body] of [
      ['not-json', '{'],
      ['empty', '{"descriptors": []}'],
      ['extra', '{"descriptors": [{}], "servers": []}'],
    ] as const) {
      const file = path.join(work, `${name}.json`);
      await writeFile(file, body);
      const r = await runNode(BUILD_RELEASE, [path.join(work, `out-${name}`), '--fallback-list', file]);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/^build-release: /);
      expect(r.stdout).not.toContain('building');
    }
  });
});
