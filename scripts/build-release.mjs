#!/usr/bin/env node
// Builds a release's files into <out> (default release-artifacts/), independent of deploy/:
//   parley-client.tgz  the web client  (client-vue/dist under dist/)
//   parley-admin.tgz   the admin console (admin/dist under dist/)
//   parley-server.tgz  the server: every tracked file of the checkout plus the built bundle and
//                      the built apps, under parley/ (run `pnpm install --frozen-lockfile` in it)
//   SHA256SUMS
// The release manager then signs them into the TUF repository:
//   parley release add <repo> release-artifacts/parley-client.tgz --path client/parley-client.tgz …
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { create } from 'tar';

const root = path.resolve(import.meta.dirname, '..');
const out = path.resolve(process.argv[2] ?? path.join(root, 'release-artifacts'));
mkdirSync(out, { recursive: true });

for (const script of ['build-client.mjs', 'build-server.mjs']) {
  const run = spawnSync(process.execPath, [path.join(root, 'scripts', script), '--force'], { cwd: root, stdio: 'inherit' });
  if (run.status !== 0) process.exit(run.status ?? 1);
}

const tgz = async (file, cwd, entries, prefix) =>
  create({ gzip: true, file: path.join(out, file), cwd, portable: true, prefix, noMtime: false }, entries);

await tgz('parley-client.tgz', path.join(root, 'client-vue'), ['dist']);
if (existsSync(path.join(root, 'admin', 'dist'))) await tgz('parley-admin.tgz', path.join(root, 'admin'), ['dist']);
const tracked = execFileSync('git', ['ls-files', '-z'], { cwd: root, encoding: 'utf8' }).split('\0').filter(Boolean);
const built = ['homeserver/dist', 'client-vue/dist', 'admin/dist'].filter((p) => existsSync(path.join(root, p)));
await tgz('parley-server.tgz', root, [...tracked.filter((f) => existsSync(path.join(root, f))), ...built], 'parley');

const sums = ['parley-client.tgz', 'parley-admin.tgz', 'parley-server.tgz']
  .filter((f) => existsSync(path.join(out, f)))
  .map(
    (f) =>
      `${createHash('sha256')
        .update(readFileSync(path.join(out, f)))
        .digest('hex')}  ${f}`,
  );
writeFileSync(path.join(out, 'SHA256SUMS'), `${sums.join('\n')}\n`);
console.log(`release files in ${out}:\n${sums.join('\n')}`);
