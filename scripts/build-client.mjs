#!/usr/bin/env node
// Builds the web client (client-vue/dist) when it is missing or older than its sources, so
// `pnpm start` on a fresh clone serves a working app and a warm start costs nothing.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..');
const client = path.join(root, 'client-vue');
const built = path.join(client, 'dist', 'index.html');
// The client bundles the sdk and schemas, so their sources count too.
const inputs = [
  'client-vue/src',
  'client-vue/public',
  'client-vue/index.html',
  'client-vue/vite.config.ts',
  'client-vue/package.json',
  'sdk/src',
  'schemas/src',
];

function newest(p) {
  if (!existsSync(p)) return 0;
  const s = statSync(p);
  if (!s.isDirectory()) return s.mtimeMs;
  let max = s.mtimeMs;
  for (const entry of readdirSync(p)) max = Math.max(max, newest(path.join(p, entry)));
  return max;
}

const force = process.argv.includes('--force');
const sourceTime = Math.max(...inputs.map((p) => newest(path.join(root, p))));
if (!force && existsSync(built) && statSync(built).mtimeMs >= sourceTime) process.exit(0);

console.log('building the web client (client-vue/dist)…');
const vite = path.join(client, 'node_modules', 'vite', 'bin', 'vite.js');
const run = spawnSync(process.execPath, [vite, 'build', '--logLevel', 'warn'], { cwd: client, stdio: 'inherit' });
process.exit(run.status ?? 1);
