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
// Pure-JS packages made of many small modules go into the bundle too: each module a node loads
// costs a module record and its own source string, so one bundled copy is smaller (knex alone
// brought 72 modules and lodash's 252, prom-client 32 and @opentelemetry/api's 51; bundling
// them took an idle server from 535 loaded CommonJS modules to about 100 and its V8 heap from
// 24 to 18.5 MB, bench/README.md "Memory").
const bundled = new Set(['@sinclair/typebox', 'yaml', 'koa', '@koa/router', '@koa/cors', 'knex', 'prom-client', 'pg', 'ws']);
// Optional native helpers and drivers the bundled packages require() only when present.
const optional = ['pg-native', 'pg-query-stream', 'bufferutil', 'utf-8-validate'];
const external = Object.keys(pkg.dependencies).filter((name) => !name.startsWith('@parley/') && !bundled.has(name));
const common = {
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20.19',
  external: [...external, ...optional],
  define: { __PARLEY_BUNDLE__: 'true' },
  // Bundled CommonJS (node-forge, ajv, …) calls require(); give it one.
  banner: { js: "import { createRequire as __parleyRequire } from 'node:module'; const require = __parleyRequire(import.meta.url);" },
  sourcemap: 'linked',
  legalComments: 'linked',
  logLevel: 'warning',
  // Whitespace and comments out (names kept, so stack traces still read): V8 keeps every
  // module's source in memory for as long as the process runs, and a single non-ASCII
  // character in a comment would make it hold the whole bundle as a two-byte string.
  minifyWhitespace: true,
  minifySyntax: true,
  charset: 'ascii',
};
// knex loads its dialects by name; Parley runs on Postgres only, so the others are left out.
const knexPostgresOnly = {
  name: 'knex-postgres-only',
  setup(b) {
    b.onResolve({ filter: /^\.\/[a-z0-9-]+$/ }, (args) => {
      if (!/[\\/]knex[\\/]lib[\\/]dialects[\\/]index\.js$/.test(args.importer) || args.path === './postgres') return undefined;
      return { path: args.path, namespace: 'knex-unused-dialect' };
    });
    b.onLoad({ filter: /.*/, namespace: 'knex-unused-dialect' }, (args) => ({
      contents: `throw new Error('this build of Parley includes only the postgres dialect of knex, not ${args.path.slice(2)}');`,
      loader: 'js',
    }));
  },
};
// The entry, as a virtual module (code splitting needs real entry points, not stdin).
const entry = {
  name: 'parley-entry',
  setup(b) {
    b.onResolve({ filter: /^parley-entry$/ }, () => ({ path: 'parley-entry.ts', namespace: 'parley-entry' }));
    b.onLoad({ filter: /.*/, namespace: 'parley-entry' }, () => ({
      contents: "import { main } from './src/cli.ts';\nprocess.exitCode = await main(process.argv.slice(2));\n",
      resolveDir: homeserver,
      loader: 'ts',
    }));
  },
};
// Code splitting: what the sources load with `await import()` (commands other than serve,
// Redis and BullMQ, the embedded Postgres, TUF, certificate generation, …) goes into
// dist/chunks/ and is only read when used, so an idle server does not carry it.
await build({
  ...common,
  entryPoints: { parley: 'parley-entry' },
  plugins: [entry, knexPostgresOnly],
  splitting: true,
  outdir: out,
  outExtension: { '.js': '.mjs' },
  chunkNames: 'chunks/[name]-[hash]',
});
const migrations = readdirSync(path.join(homeserver, 'migrations')).filter((f) => /^\d{14}_[a-z0-9_]+\.ts$/.test(f));
await build({
  ...common,
  sourcemap: false,
  entryPoints: migrations.map((f) => path.join(homeserver, 'migrations', f)),
  outdir: path.join(out, 'migrations'),
  outExtension: { '.js': '.mjs' },
});
