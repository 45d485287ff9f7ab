#!/usr/bin/env node
// Runs the whole suite (or the vitest arguments given) and ends with one plain
// "N passed, N failed" line that CI reads.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..');
const report = path.join(root, 'test-artifacts', 'vitest.json');
mkdirSync(path.dirname(report), { recursive: true });
// vitest's exports map hides its bin script; find it next to its package.json.
const vitest = path.join(path.dirname(createRequire(import.meta.url).resolve('vitest/package.json')), 'vitest.mjs');

// The e2e project needs Debian's Chromium and a built client; prepare both when it runs.
const args = process.argv.slice(2);
const projects = args.flatMap((a, i) => (a === '--project' ? [args[i + 1]] : a.startsWith('--project=') ? [a.slice(10)] : []));
if (projects.length === 0 || projects.includes('e2e')) {
  for (const [cmd, cmdArgs] of [
    ['bash', [path.join(root, 'scripts', 'ensure-chromium.sh')]],
    [process.execPath, [path.join(root, 'scripts', 'build-client.mjs')]],
  ]) {
    const prep = spawnSync(cmd, cmdArgs, { cwd: root, stdio: 'inherit' });
    if (prep.status !== 0) process.exit(prep.status ?? 1);
  }
}

const run = spawnSync(process.execPath, [vitest, 'run', '--reporter=default', '--reporter=json', `--outputFile.json=${report}`, ...args], {
  cwd: root,
  stdio: 'inherit',
});

if (existsSync(report)) {
  const { numPassedTests, numFailedTests, numPendingTests } = JSON.parse(readFileSync(report, 'utf8'));
  console.log(`\nTests: ${numPassedTests} passed, ${numFailedTests} failed, ${numPendingTests} skipped`);
}
process.exit(run.status ?? 1);
