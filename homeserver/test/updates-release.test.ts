import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { fetchVerifiedTarget } from '../src/updates/mirror.js';
import { runRelease } from '../src/updates/release-cli.js';
import { serveDir } from './support/static-dir.js';

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
      await expect(run('add', repo, bundle, '--path', 'client.tgz', '--kind', 'game', ...roleKeys)).rejects.toThrow(
        /--kind must be one of/,
      );
      expect(
        await run(
          'add',
          repo,
          bundle,
          '--path',
          'client.tgz',
          '--release-version',
          '1.0.0',
          '--notes',
          'First',
          '--kind',
          'web-client',
          ...roleKeys,
        ),
      ).toBe(0);
      expect(await run('timestamp', repo, '--key', k('timestamp'))).toBe(0);
      // Rotate to r2, r3, r4 with threshold 2: two old holders (r1, r3) and two new ones (r3, r4) sign.
      expect(await run('rotate-root', repo, '--root-key', k('r2'), '--root-key', k('r3'), '--root-key', k('r4'), '--threshold', '2')).toBe(
        0,
      );
      // The new holders alone are not enough (r3 is also an old one): the previous root's threshold must sign too.
      for (const holder of ['r3', 'r4']) expect(await run('sign', repo, 'root', '--key', k(holder))).toBe(0);
      expect(lines.at(-1)).toMatch(/: 2 of 2 needed; previous root's keys: 1 of 2 needed\n$/);
      lines.length = 0;
      await run('status', repo);
      expect(lines.join('')).toMatch(/^root +v2 .* signatures 2\/2 {2}previous root 1\/2 {2}NOT ENOUGH$/m);
      expect(await run('sign', repo, 'root', '--key', k('r1'))).toBe(0);
      lines.length = 0;
      await run('status', repo);
      expect(lines.join('')).not.toMatch(/NOT ENOUGH/);
      expect(lines.join('')).toMatch(/^root +v2 /m);
      expect(lines.join('')).toMatch(/^root +v2 .* signatures 2\/2 {2}previous root 2\/2$/m);
      expect(lines.join('')).toMatch(/target client\.tgz .*"version":"1\.0\.0".*"kind":"web-client"/);

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
