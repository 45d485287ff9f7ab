import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';

const ROOT = path.resolve(import.meta.dirname, '../..');

/** Every installed package (name) whose install would run a script: pnpm 10 asks about each one it is not told about. */
function packagesWithBuildScripts(): string[] {
  const store = path.join(ROOT, 'node_modules', '.pnpm');
  const found = new Set<string>();
  for (const entry of readdirSync(store)) {
    const modules = path.join(store, entry, 'node_modules');
    if (!existsSync(modules)) continue;
    for (const scopeOrName of readdirSync(modules)) {
      const names = scopeOrName.startsWith('@')
        ? readdirSync(path.join(modules, scopeOrName)).map((n) => `${scopeOrName}/${n}`)
        : [scopeOrName];
      for (const name of names) {
        const dir = path.join(modules, name);
        const manifest = path.join(dir, 'package.json');
        if (!existsSync(manifest)) continue;
        const scripts = (JSON.parse(readFileSync(manifest, 'utf8')) as { scripts?: Record<string, string> }).scripts ?? {};
        if (scripts.preinstall || scripts.install || scripts.postinstall || existsSync(path.join(dir, 'binding.gyp'))) found.add(name);
      }
    }
  }
  return [...found].sort();
}

describe('a clean install', () => {
  it('decides about every dependency build script, so pnpm prints no "Ignored build scripts" warning', () => {
    const workspace = parse(readFileSync(path.join(ROOT, 'pnpm-workspace.yaml'), 'utf8')) as {
      onlyBuiltDependencies?: string[];
      ignoredBuiltDependencies?: string[];
    };
    const decided = new Set([...(workspace.onlyBuiltDependencies ?? []), ...(workspace.ignoredBuiltDependencies ?? [])]);
    const undecided = packagesWithBuildScripts().filter((name) => !decided.has(name));
    expect(undecided).toEqual([]);
  });
});
