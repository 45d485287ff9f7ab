#!/usr/bin/env node
// Builds a release's files into <out> (default release-artifacts/), independent of deploy/:
//   parley-client.tgz  the web client  (client-vue/dist under dist/)
//   parley-admin.tgz   the admin console (admin/dist under dist/)
//   parley-server.tgz  the server: every tracked file of the checkout plus the built bundle and
//                      the built apps, under parley/ (run `pnpm install --frozen-lockfile` in it)
//   bootstrap-fallback-list.json  with --fallback-list FILE: the bootstrap fallback list
//                      ({descriptors: [...]}, each signed by the server it names), checked and copied
//   SHA256SUMS
// Usage: node scripts/build-release.mjs [out] [--fallback-list FILE]
// The release manager then signs them into the TUF repository:
//   parley release add <repo> release-artifacts/parley-client.tgz --path client/parley-client.tgz …
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { create } from 'tar';

const root = path.resolve(import.meta.dirname, '..');
const { values, positionals } = parseArgs({ allowPositionals: true, options: { 'fallback-list': { type: 'string' } } });
const out = path.resolve(positionals[0] ?? path.join(root, 'release-artifacts'));
mkdirSync(out, { recursive: true });

// The fallback list is checked before anything is built: {descriptors: [...]} (at most 1,024), as
// homeservers read it (bootstrap.fallback_list, or the release's bootstrap/fallback-list.json).
if (values['fallback-list']) {
  const file = values['fallback-list'];
  let list;
  try {
    list = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    console.error(`build-release: ${file}: ${err.message}`);
    process.exit(2);
  }
  const keys = list && typeof list === 'object' && !Array.isArray(list) ? Object.keys(list) : [];
  const descriptors = list?.descriptors;
  if (keys.join() !== 'descriptors' || !Array.isArray(descriptors) || descriptors.length === 0 || descriptors.length > 1024) {
    console.error(`build-release: ${file} must be {"descriptors": [...]} with 1 to 1024 signed descriptors`);
    process.exit(2);
  }
  writeFileSync(path.join(out, 'bootstrap-fallback-list.json'), `${JSON.stringify({ descriptors })}\n`);
} else rmSync(path.join(out, 'bootstrap-fallback-list.json'), { force: true }); // not a stale one from an earlier run

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

const sums = ['parley-client.tgz', 'parley-admin.tgz', 'parley-server.tgz', 'bootstrap-fallback-list.json']
  .filter((f) => existsSync(path.join(out, f)))
  .map(
    (f) =>
      `${createHash('sha256')
        .update(readFileSync(path.join(out, f)))
        .digest('hex')}  ${f}`,
  );
writeFileSync(path.join(out, 'SHA256SUMS'), `${sums.join('\n')}\n`);
console.log(`release files in ${out}:\n${sums.join('\n')}`);
