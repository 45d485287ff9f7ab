import { createPublicKey, type KeyObject } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { Metadata, MetadataKind } from '@tufjs/models';
import { generateReleaseKey, ReleaseError, ReleaseRepository, ROLES, type RoleName, readPrivateKey } from './release.js';

export const RELEASE_USAGE = `usage: parley release <command> [options]

commands:
  keygen <keyfile>                         new Ed25519 release key (PEM, mode 0600); prints its key ID
  init <repo> --root-key F [--root-key F …] --threshold N
       --targets-key F --snapshot-key F --timestamp-key F
                                           new repository; root v1 unsigned until enough
                                           root key holders run 'sign <repo> root'
  sign <repo> <role> --key F               add F's signature to root|targets|snapshot|timestamp
  add <repo> <file> --path P --targets-key F --snapshot-key F --timestamp-key F
       [--release-version V] [--notes TEXT] [--kind web-client|admin|server|bootstrap-fallback]
                                           add or replace a release file; re-signs targets,
                                           snapshot and timestamp
  timestamp <repo> --key F                 refresh the timestamp (expires after a day: cron it)
  rotate-root <repo> --root-key F … --threshold N [--targets-key F] [--snapshot-key F] [--timestamp-key F]
                                           root version N+1; then a threshold of the old root
                                           keys AND of the new ones each run 'sign <repo> root'
  status <repo>                            versions, expiries and signatures against thresholds

Key files are PEM; init and rotate-root also take public keys, so root key holders can
keep their private keys offline and sign on their own machines.
`;

async function publicKeyFile(file: string): Promise<KeyObject> {
  try {
    const key = createPublicKey(await readFile(file));
    if (key.asymmetricKeyType !== 'ed25519') throw new Error('not an Ed25519 key');
    return key;
  } catch (err) {
    throw new ReleaseError(`cannot read the key ${file}: ${(err as Error).message}`);
  }
}

function need<T>(value: T | undefined, name: string): T {
  if (value === undefined || value === '') throw new ReleaseError(`--${name} is required`);
  return value;
}

/** `parley release …`: the release manager's commands. Answers the exit code. */
export async function runRelease(argv: string[], out: (s: string) => void = (s) => process.stdout.write(s)): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      'root-key': { type: 'string', multiple: true },
      threshold: { type: 'string' },
      'targets-key': { type: 'string' },
      'snapshot-key': { type: 'string' },
      'timestamp-key': { type: 'string' },
      key: { type: 'string' },
      path: { type: 'string' },
      'release-version': { type: 'string' },
      notes: { type: 'string' },
      kind: { type: 'string' },
    },
  });
  const [command, repoDir, arg] = positionals;
  const now = Date.now();
  const threshold = () => {
    const n = Number(need(values.threshold, 'threshold'));
    if (!Number.isInteger(n) || n < 1) throw new ReleaseError('--threshold must be a positive integer');
    return n;
  };
  switch (command) {
    case 'keygen': {
      const file = need(repoDir, 'keyfile (the first argument)');
      const key = generateReleaseKey();
      await writeFile(file, key.privatePem, { mode: 0o600, flag: 'wx' });
      out(`${key.keyId}\n`);
      return 0;
    }
    case 'init': {
      const rootKeys = await Promise.all((values['root-key'] ?? []).map(publicKeyFile));
      if (rootKeys.length === 0) throw new ReleaseError('--root-key is required (once per root key)');
      const repo = await ReleaseRepository.init(need(repoDir, 'repo'), {
        rootKeys,
        threshold: threshold(),
        targetsKey: await publicKeyFile(need(values['targets-key'], 'targets-key')),
        snapshotKey: await publicKeyFile(need(values['snapshot-key'], 'snapshot-key')),
        timestampKey: await publicKeyFile(need(values['timestamp-key'], 'timestamp-key')),
        now,
      });
      out(
        `repository created in ${repo.dir}: root needs ${threshold()} of ${rootKeys.length} root signatures ('parley release sign ${repo.dir} root --key …')\n`,
      );
      return 0;
    }
    case 'sign': {
      const role = need(arg, 'role') as RoleName;
      if (!ROLES.includes(role)) throw new ReleaseError(`role must be one of ${ROLES.join(', ')}`);
      const repo = await ReleaseRepository.load(need(repoDir, 'repo'));
      const key = await readPrivateKey(need(values.key, 'key'));
      if (role === 'root') repo.previousRootKeyIds = await previousRootKeys(repo);
      const keyId = repo.sign(role, key);
      await repo.save();
      const { valid, threshold: t } = repo.signatureCount(role);
      const previous = role === 'root' ? await previousRootCount(repo) : null;
      const also = previous ? `; previous root's keys: ${previous.valid} of ${previous.threshold} needed` : '';
      out(`${role} signed by ${keyId.slice(0, 16)}…: ${valid} of ${t} needed${also}\n`);
      return 0;
    }
    case 'add': {
      const repo = await ReleaseRepository.load(need(repoDir, 'repo'));
      const bytes = await readFile(need(arg, 'file'));
      const custom: Record<string, string> = {};
      if (values['release-version']) custom.version = values['release-version'];
      if (values.notes) custom.notes = values.notes;
      if (values.kind) {
        if (!KINDS.includes(values.kind)) throw new ReleaseError(`--kind must be one of ${KINDS.join(', ')}`);
        custom.kind = values.kind;
      }
      const info = await repo.addTarget(
        need(values.path, 'path'),
        bytes,
        {
          targets: await readPrivateKey(need(values['targets-key'], 'targets-key')),
          snapshot: await readPrivateKey(need(values['snapshot-key'], 'snapshot-key')),
          timestamp: await readPrivateKey(need(values['timestamp-key'], 'timestamp-key')),
        },
        now,
        custom,
      );
      out(`added ${info.path} (${info.length} bytes, sha256 ${info.hashes.sha256}); targets v${repo.targets.signed.version}\n`);
      return 0;
    }
    case 'timestamp': {
      const repo = await ReleaseRepository.load(need(repoDir, 'repo'));
      await repo.refreshTimestamp(await readPrivateKey(need(values.key, 'key')), now);
      out(`timestamp v${repo.timestamp.signed.version}, expires ${repo.timestamp.signed.expires}\n`);
      return 0;
    }
    case 'rotate-root': {
      const repo = await ReleaseRepository.load(need(repoDir, 'repo'));
      const rootKeys = await Promise.all((values['root-key'] ?? []).map(publicKeyFile));
      if (rootKeys.length === 0) throw new ReleaseError('--root-key is required (once per new root key)');
      const opt = async (name: 'targets-key' | 'snapshot-key' | 'timestamp-key') =>
        values[name] ? publicKeyFile(values[name]) : undefined;
      repo.rotateRoot(
        {
          rootKeys,
          threshold: threshold(),
          targetsKey: await opt('targets-key'),
          snapshotKey: await opt('snapshot-key'),
          timestampKey: await opt('timestamp-key'),
        },
        now,
      );
      await repo.save();
      out(
        `root v${repo.root.signed.version} written: it needs the old and the new root threshold ('parley release sign ${repo.dir} root --key …')\n`,
      );
      return 0;
    }
    case 'status': {
      const repo = await ReleaseRepository.load(need(repoDir, 'repo'));
      for (const role of ROLES) {
        const meta = repo[role].signed;
        const { valid, threshold: t } = repo.signatureCount(role);
        // A rotated root also needs the previous root's threshold (clients check both).
        const previous = role === 'root' ? await previousRootCount(repo) : null;
        const enough = valid >= t && (!previous || previous.valid >= previous.threshold);
        const also = previous ? `  previous root ${previous.valid}/${previous.threshold}` : '';
        out(
          `${role.padEnd(9)} v${meta.version}  expires ${meta.expires}  signatures ${valid}/${t}${also}${enough ? '' : '  NOT ENOUGH'}\n`,
        );
      }
      for (const [p, t] of Object.entries(repo.targets.signed.targets))
        out(`target ${p}  ${t.length} bytes  ${JSON.stringify(t.custom)}\n`);
      return 0;
    }
  }
  out(RELEASE_USAGE);
  return 2;
}

/** What a release file is for: `web-client` bundles are the ones an admin may switch to. */
const KINDS = ['web-client', 'admin', 'server', 'bootstrap-fallback'];

/** Root v N (N > 1) against root v N−1's keys and threshold, which must also sign it. */
async function previousRootCount(repo: ReleaseRepository): Promise<{ valid: number; threshold: number } | null> {
  const v = repo.root.signed.version;
  if (v <= 1) return null;
  const prev = Metadata.fromJSON(MetadataKind.Root, JSON.parse(await readFile(`${repo.metadataDir}/${v - 1}.root.json`, 'utf8')));
  const role = prev.signed.roles.root as { keyIDs: string[]; threshold: number };
  let valid = 0;
  for (const id of role.keyIDs) {
    try {
      prev.signed.keys[id]?.verifySignature(repo.root as never);
      if (prev.signed.keys[id]) valid++;
    } catch {
      // not signed by this key
    }
  }
  return { valid, threshold: role.threshold };
}

/** While signing root v N, the keys of root v N−1 also count (rotation needs both thresholds). */
async function previousRootKeys(repo: ReleaseRepository): Promise<string[]> {
  const v = repo.root.signed.version;
  if (v <= 1) return [];
  try {
    const prev = JSON.parse(await readFile(`${repo.metadataDir}/${v - 1}.root.json`, 'utf8')) as {
      signed: { roles: { root: { keyids: string[] } } };
    };
    return prev.signed.roles.root.keyids;
  } catch {
    return [];
  }
}
