import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ReleaseRepository } from '../../src/updates/release.js';

/** A fresh Ed25519 signing key. */
export const signingKey = (): KeyObject => generateKeyPairSync('ed25519').privateKey;

/** One key for each role of a release repository (`root` is the first root key). */
export interface ReleaseKeys {
  root: KeyObject;
  targets: KeyObject;
  snapshot: KeyObject;
  timestamp: KeyObject;
}

export interface ReleaseRepositoryOptions {
  /** Root keys (default: one new key) and how many must sign root (default 1). */
  rootKeys?: KeyObject[];
  threshold?: number;
  /** Where to write a copy of root v1, as a server's `updates.trusted_root` reads it. */
  trustedRoot?: string;
}

/**
 * A k-of-n TUF release repository in `dir` (1-of-1 by default) with new keys for the other
 * roles: root v1 signed by the first `threshold` root keys and saved, with no targets yet.
 */
export async function createReleaseRepository(
  dir: string,
  options: ReleaseRepositoryOptions = {},
): Promise<{ repo: ReleaseRepository; keys: ReleaseKeys }> {
  const rootKeys = options.rootKeys ?? [signingKey()];
  const threshold = options.threshold ?? 1;
  const keys: ReleaseKeys = { root: rootKeys[0] as KeyObject, targets: signingKey(), snapshot: signingKey(), timestamp: signingKey() };
  const repo = await ReleaseRepository.init(dir, {
    rootKeys,
    threshold,
    targetsKey: keys.targets,
    snapshotKey: keys.snapshot,
    timestampKey: keys.timestamp,
    now: Date.now(),
  });
  for (const signer of rootKeys.slice(0, threshold)) repo.sign('root', signer);
  await repo.save();
  if (options.trustedRoot) await writeFile(options.trustedRoot, await readFile(path.join(dir, 'metadata', '1.root.json')));
  return { repo, keys };
}
