import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject, sign } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Key, Metadata, MetadataKind, MetaFile, Root, Signature, Snapshot, TargetFile, Targets, Timestamp } from '@tufjs/models';

/**
 * Parley releases as a TUF repository (docs/protocol.md), built with @tufjs/models.
 *
 * Layout of a repository directory:
 *   metadata/root.json, metadata/<N>.root.json (every root version, for rotation chains),
 *   metadata/targets.json, metadata/snapshot.json, metadata/timestamp.json
 *   targets/<path>
 * Keys are Ed25519, kept by their holders in PEM files outside the repository; a key's TUF
 * key ID is the SHA-256 of its canonical public key object, as the specification says.
 * Roles: root (k of n, rotated by a root signed by both the old and the new threshold),
 * targets, snapshot and timestamp (one key each by default). Consistent snapshots are off:
 * mirrors copy whole repositories, and clients fetch root versions by number.
 */

export const ROLES = ['root', 'targets', 'snapshot', 'timestamp'] as const;
export type RoleName = (typeof ROLES)[number];
const SPEC_VERSION = '1.0.31';
const DAY = 86_400_000;
export const DEFAULT_EXPIRY_MS: Record<RoleName, number> = { root: 365 * DAY, targets: 90 * DAY, snapshot: 7 * DAY, timestamp: DAY };

export class ReleaseError extends Error {}

function canonical(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  const entries = Object.keys(value as object)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${canonical((value as Record<string, unknown>)[k])}`);
  return `{${entries.join(',')}}`;
}

/** The TUF form of an Ed25519 key's public half, and its key ID. */
export function tufKey(key: KeyObject): Key {
  if (key.asymmetricKeyType !== 'ed25519') throw new ReleaseError('release keys must be Ed25519');
  const publicKey = key.type === 'private' ? createPublicKey(key) : key;
  const raw = publicKey.export({ format: 'der', type: 'spki' }).subarray(-32);
  const body = { keytype: 'ed25519', scheme: 'ed25519', keyval: { public: raw.toString('hex') } };
  const keyID = createHash('sha256').update(canonical(body)).digest('hex');
  return new Key({ keyID, keyType: 'ed25519', scheme: 'ed25519', keyVal: { public: raw.toString('hex') } });
}

export function generateReleaseKey(): { privatePem: string; publicKey: KeyObject; keyId: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return { privatePem: privateKey.export({ format: 'pem', type: 'pkcs8' }) as string, publicKey, keyId: tufKey(publicKey).keyID };
}

export async function readPrivateKey(file: string): Promise<KeyObject> {
  try {
    const key = createPrivateKey(await readFile(file));
    if (key.asymmetricKeyType !== 'ed25519') throw new Error('not an Ed25519 key');
    return key;
  } catch (err) {
    throw new ReleaseError(`cannot read the release key ${file}: ${(err as Error).message}`);
  }
}

function signer(privateKey: KeyObject) {
  const keyID = tufKey(createPublicKey(privateKey)).keyID;
  return (data: Buffer) => new Signature({ keyID, sig: sign(null, data, privateKey).toString('hex') });
}

function expiry(now: number, ms: number): string {
  return new Date(now + ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

type RoleKeys = Record<RoleName, { keys: Key[]; threshold: number }>;

/** A root naming `roles`' keys and thresholds (built from JSON: the library exposes no Role constructor). */
function buildRoot(version: number, expires: string, roles: RoleKeys): Root {
  const keys: Record<string, unknown> = {};
  const roleJson: Record<string, unknown> = {};
  for (const role of ROLES) {
    for (const k of roles[role].keys) keys[k.keyID] = k.toJSON();
    roleJson[role] = { keyids: [...new Set(roles[role].keys.map((k) => k.keyID))], threshold: roles[role].threshold };
  }
  return Root.fromJSON({
    _type: 'root',
    spec_version: SPEC_VERSION,
    version,
    expires,
    consistent_snapshot: false,
    keys,
    roles: roleJson,
  } as never);
}

type AnyMeta = Metadata<Root> | Metadata<Targets> | Metadata<Snapshot> | Metadata<Timestamp>;

/** A release repository on disk. Every change writes the files it touched, atomically. */
export class ReleaseRepository {
  private constructor(
    readonly dir: string,
    public root: Metadata<Root>,
    public targets: Metadata<Targets>,
    public snapshot: Metadata<Snapshot>,
    public timestamp: Metadata<Timestamp>,
  ) {}

  get metadataDir(): string {
    return path.join(this.dir, 'metadata');
  }
  get targetsDir(): string {
    return path.join(this.dir, 'targets');
  }

  /**
   * A new repository: root v1 naming `rootKeys` with `threshold`, and one key for each other
   * role. Root is left unsigned: each root key holder signs it with sign('root', key).
   */
  static async init(
    dir: string,
    o: { rootKeys: KeyObject[]; threshold: number; targetsKey: KeyObject; snapshotKey: KeyObject; timestampKey: KeyObject; now: number },
  ): Promise<ReleaseRepository> {
    if (existsSync(path.join(dir, 'metadata', 'root.json'))) throw new ReleaseError(`${dir} already holds a repository`);
    if (!Number.isInteger(o.threshold) || o.threshold < 1 || o.threshold > o.rootKeys.length) {
      throw new ReleaseError(`threshold must be 1 to ${o.rootKeys.length} (the number of root keys)`);
    }
    const root = buildRoot(1, expiry(o.now, DEFAULT_EXPIRY_MS.root), {
      root: { keys: o.rootKeys.map(tufKey), threshold: o.threshold },
      targets: { keys: [tufKey(o.targetsKey)], threshold: 1 },
      snapshot: { keys: [tufKey(o.snapshotKey)], threshold: 1 },
      timestamp: { keys: [tufKey(o.timestampKey)], threshold: 1 },
    });
    const common = (role: RoleName) => ({ version: 1, specVersion: SPEC_VERSION, expires: expiry(o.now, DEFAULT_EXPIRY_MS[role]) });
    const repo = new ReleaseRepository(
      dir,
      new Metadata(root),
      new Metadata(new Targets(common('targets'))),
      new Metadata(new Snapshot({ ...common('snapshot'), meta: { 'targets.json': new MetaFile({ version: 1 }) } })),
      new Metadata(new Timestamp({ ...common('timestamp'), snapshotMeta: new MetaFile({ version: 1 }) })),
    );
    await mkdir(repo.metadataDir, { recursive: true });
    await mkdir(repo.targetsDir, { recursive: true });
    await repo.save();
    return repo;
  }

  static async load(dir: string): Promise<ReleaseRepository> {
    const read = async (name: string) => {
      try {
        return JSON.parse(await readFile(path.join(dir, 'metadata', name), 'utf8'));
      } catch (err) {
        throw new ReleaseError(`${path.join(dir, 'metadata', name)}: ${(err as Error).message}`);
      }
    };
    return new ReleaseRepository(
      dir,
      Metadata.fromJSON(MetadataKind.Root, await read('root.json')),
      Metadata.fromJSON(MetadataKind.Targets, await read('targets.json')),
      Metadata.fromJSON(MetadataKind.Snapshot, await read('snapshot.json')),
      Metadata.fromJSON(MetadataKind.Timestamp, await read('timestamp.json')),
    );
  }

  private meta(role: RoleName): AnyMeta {
    return this[role] as AnyMeta;
  }

  /** Adds `key`'s signature to `role` (root: one holder at a time, for thresholds). */
  sign(role: RoleName, privateKey: KeyObject): string {
    const keyID = tufKey(createPublicKey(privateKey)).keyID;
    const allowed = this.root.signed.roles[role]?.keyIDs ?? [];
    // A root being rotated is also signed by the previous root's keys (checked by clients).
    if (!allowed.includes(keyID) && !(role === 'root' && this.previousRootKeyIds.includes(keyID))) {
      throw new ReleaseError(`key ${keyID.slice(0, 12)}… is not a ${role} key of this repository`);
    }
    this.meta(role).sign(signer(privateKey), true);
    return keyID;
  }

  /** Keys of the root version before this one (set while rotating). */
  previousRootKeyIds: string[] = [];

  /** How many valid signatures `role` carries against its threshold. */
  signatureCount(role: RoleName): { valid: number; threshold: number } {
    const r = this.root.signed.roles[role] as { keyIDs: string[]; threshold: number };
    let valid = 0;
    for (const id of r.keyIDs) {
      const key = this.root.signed.keys[id];
      try {
        key?.verifySignature(this.meta(role) as never);
        valid++;
      } catch {
        // not signed by this key
      }
    }
    return { valid, threshold: r.threshold };
  }

  /**
   * Adds (or replaces) a target from a file, with optional custom fields (release notes, kind),
   * then bumps targets, snapshot and timestamp and signs them with the given keys.
   */
  async addTarget(
    targetPath: string,
    bytes: Buffer,
    keys: { targets: KeyObject; snapshot: KeyObject; timestamp: KeyObject },
    now: number,
    custom: Record<string, string> = {},
  ): Promise<TargetFile> {
    if (!/^[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)*$/.test(targetPath) || targetPath.split('/').includes('..')) {
      throw new ReleaseError(`target path ${targetPath} must be plain names separated by /`);
    }
    const file = path.join(this.targetsDir, targetPath);
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, bytes);
    const info = new TargetFile({
      path: targetPath,
      length: bytes.length,
      hashes: { sha256: createHash('sha256').update(bytes).digest('hex') },
      unrecognizedFields: Object.keys(custom).length > 0 ? { custom } : {},
    });
    const targets = this.targets.signed;
    this.targets = new Metadata(
      new Targets({
        version: targets.version + 1,
        specVersion: SPEC_VERSION,
        expires: expiry(now, DEFAULT_EXPIRY_MS.targets),
        targets: { ...targets.targets, [targetPath]: info },
      }),
    );
    this.sign('targets', keys.targets);
    await this.publish(keys, now);
    return info;
  }

  /** A new snapshot naming the current targets, and a new timestamp naming it; both signed. */
  async publish(keys: { snapshot: KeyObject; timestamp: KeyObject }, now: number): Promise<void> {
    this.snapshot = new Metadata(
      new Snapshot({
        version: this.snapshot.signed.version + 1,
        specVersion: SPEC_VERSION,
        expires: expiry(now, DEFAULT_EXPIRY_MS.snapshot),
        meta: { 'targets.json': new MetaFile({ version: this.targets.signed.version }) },
      }),
    );
    this.sign('snapshot', keys.snapshot);
    await this.refreshTimestamp(keys.timestamp, now);
  }

  /** Re-signs the timestamp (it expires after a day: run this from cron). */
  async refreshTimestamp(timestampKey: KeyObject, now: number): Promise<void> {
    this.timestamp = new Metadata(
      new Timestamp({
        version: this.timestamp.signed.version + 1,
        specVersion: SPEC_VERSION,
        expires: expiry(now, DEFAULT_EXPIRY_MS.timestamp),
        snapshotMeta: new MetaFile({ version: this.snapshot.signed.version }),
      }),
    );
    this.sign('timestamp', timestampKey);
    await this.save();
  }

  /**
   * Starts a root rotation: root version N+1 with new root keys and threshold (and optionally
   * new keys for the other roles). It must then be signed by a threshold of the old root keys
   * AND of the new ones before clients accept it; an old root alone can no longer sign after.
   */
  rotateRoot(
    o: { rootKeys: KeyObject[]; threshold: number; targetsKey?: KeyObject; snapshotKey?: KeyObject; timestampKey?: KeyObject },
    now: number,
  ): void {
    const old = this.root.signed;
    this.previousRootKeyIds = [...(old.roles.root?.keyIDs ?? [])];
    const keep = (role: RoleName, replacement: KeyObject | undefined) =>
      replacement
        ? { keys: [tufKey(replacement)], threshold: 1 }
        : { keys: (old.roles[role]?.keyIDs ?? []).map((id) => old.keys[id] as Key), threshold: old.roles[role]?.threshold ?? 1 };
    this.root = new Metadata(
      buildRoot(old.version + 1, expiry(now, DEFAULT_EXPIRY_MS.root), {
        root: { keys: o.rootKeys.map(tufKey), threshold: o.threshold },
        targets: keep('targets', o.targetsKey),
        snapshot: keep('snapshot', o.snapshotKey),
        timestamp: keep('timestamp', o.timestampKey),
      }),
    );
  }

  async save(): Promise<void> {
    const write = async (name: string, meta: AnyMeta) => {
      const file = path.join(this.metadataDir, name);
      await writeFile(`${file}.tmp`, `${JSON.stringify(meta.toJSON(), null, 1)}\n`);
      await rename(`${file}.tmp`, file);
    };
    await write('root.json', this.root);
    await write(`${this.root.signed.version}.root.json`, this.root);
    await write('targets.json', this.targets);
    await write('snapshot.json', this.snapshot);
    await write('timestamp.json', this.timestamp);
  }
}
