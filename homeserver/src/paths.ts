import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

/**
 * Where the homeserver package sits on disk, found by walking up from this module. The
 * same answer whether the server runs from its TypeScript sources (`src/…` through tsx) or
 * from the production bundle (`dist/parley.mjs`), whose modules sit at a different depth.
 */
function findPackageDir(from: string): string {
  for (let dir = from; ; dir = path.dirname(dir)) {
    const manifest = path.join(dir, 'package.json');
    if (existsSync(manifest) && (JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string }).name === '@parley/homeserver') return dir;
    if (path.dirname(dir) === dir) throw new Error(`cannot find the @parley/homeserver package above ${from}`);
  }
}

export const HOMESERVER_DIR = findPackageDir(import.meta.dirname);
/** The checkout (or install) root: client-vue/, admin/ and homeserver/ sit side by side in it. */
export const ROOT_DIR = path.dirname(HOMESERVER_DIR);

declare const __PARLEY_BUNDLE__: boolean | undefined;
/** True in the esbuild bundle (`pnpm build`), false when running the sources through tsx. */
export const BUNDLED = typeof __PARLEY_BUNDLE__ !== 'undefined' && __PARLEY_BUNDLE__;
