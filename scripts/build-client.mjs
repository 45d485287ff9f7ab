#!/usr/bin/env node
// Builds the web client (client-vue/dist) and the admin console (admin/dist) when missing or
// older than their sources, so `pnpm start` on a fresh clone serves both and a warm start
// costs nothing. `--force` rebuilds both; `--only client|admin` builds one.
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { newest } from './newest.mjs';

const root = path.resolve(import.meta.dirname, '..');
// Each app bundles the sdk and schemas, so their sources count too.
const shared = ['sdk/src', 'schemas/src'];
const apps = [
  { name: 'client', dir: 'client-vue', label: 'the web client (client-vue/dist)' },
  { name: 'admin', dir: 'admin', label: 'the admin console (admin/dist)' },
];

const force = process.argv.includes('--force');
const onlyAt = process.argv.indexOf('--only');
const only = onlyAt >= 0 ? process.argv[onlyAt + 1] : null;

for (const app of apps) {
  if (only && only !== app.name) continue;
  const dir = path.join(root, app.dir);
  const built = path.join(dir, 'dist', 'index.html');
  const inputs = [
    `${app.dir}/src`,
    `${app.dir}/public`,
    `${app.dir}/index.html`,
    `${app.dir}/vite.config.ts`,
    `${app.dir}/package.json`,
    ...shared,
  ];
  const sourceTime = Math.max(...inputs.map((p) => newest(path.join(root, p))));
  if (!force && existsSync(built) && statSync(built).mtimeMs >= sourceTime) continue;
  console.log(`building ${app.label}…`);
  const vite = path.join(dir, 'node_modules', 'vite', 'bin', 'vite.js');
  const run = spawnSync(process.execPath, [vite, 'build', '--logLevel', 'warn'], { cwd: dir, stdio: 'inherit' });
  if (run.status !== 0) process.exit(run.status ?? 1);
}
