#!/usr/bin/env node
// Bundles the homeserver (with the schemas and federation packages) into plain JavaScript,
// homeserver/dist/parley.mjs, so production runs `node homeserver/dist/parley.mjs serve`
// without a TypeScript loader. Migrations are compiled beside it (dist/migrations/*.mjs).
// Third-party packages the homeserver depends on stay in node_modules (native addons,
// embedded Postgres binaries, knex's dialect loading); the pure-JS dependencies of schemas
// and federation are bundled. Rebuilds only when a source is newer than the bundle, unless
// --force.
import { existsSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { build } from 'esbuild';
import { newest } from './newest.mjs';

const root = path.resolve(import.meta.dirname, '..');
const homeserver = path.join(root, 'homeserver');
const out = path.join(homeserver, 'dist');
const bundle = path.join(out, 'parley.mjs');
const inputs = [
  'homeserver/src',
  'homeserver/migrations',
  'homeserver/package.json',
  'federation/src',
  'schemas/src',
  'scripts/build-server.mjs',
];

const force = process.argv.includes('--force');
const sourceTime = Math.max(...inputs.map((p) => newest(path.join(root, p))));
if (!force && existsSync(bundle) && statSync(bundle).mtimeMs >= sourceTime) process.exit(0);

console.log('building the server bundle (homeserver/dist)…');
rmSync(out, { recursive: true, force: true });
const pkg = JSON.parse(readFileSync(path.join(homeserver, 'package.json'), 'utf8'));
const external = Object.keys(pkg.dependencies).filter((name) => !name.startsWith('@parley/'));
const common = {
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20.19',
  external,
  define: { __PARLEY_BUNDLE__: 'true' },
  // Bundled CommonJS (node-forge, ajv, …) calls require(); give it one.
  banner: { js: "import { createRequire as __parleyRequire } from 'node:module'; const require = __parleyRequire(import.meta.url);" },
  sourcemap: 'linked',
  legalComments: 'linked',
  logLevel: 'warning',
};
await build({
  ...common,
  stdin: {
    contents: "import { main } from './src/cli.ts';\nprocess.exitCode = await main(process.argv.slice(2));\n",
    resolveDir: homeserver,
    sourcefile: 'parley-entry.ts',
    loader: 'ts',
  },
  outfile: bundle,
});
const migrations = readdirSync(path.join(homeserver, 'migrations')).filter((f) => /^\d{14}_[a-z0-9_]+\.ts$/.test(f));
await build({
  ...common,
  sourcemap: false,
  entryPoints: migrations.map((f) => path.join(homeserver, 'migrations', f)),
  outdir: path.join(out, 'migrations'),
  outExtension: { '.js': '.mjs' },
});
