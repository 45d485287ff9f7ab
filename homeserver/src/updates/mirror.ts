import { existsSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { FederationClient } from '@parley/federation/transport';
import type { TargetFile } from '@tufjs/models';

/** Sources named `parley-fed://<server>/updates` are mirrors reached over federation. */
export const FEDERATION_SCHEME = 'parley-fed:';

/** The release file holding the bootstrap fallback list (`{descriptors: [...]}`, docs/protocol.md). */
export const FALLBACK_LIST_TARGET = 'bootstrap/fallback-list.json';

/** The fallback list of the newest verified release this server holds, or null before one named it. */
export function deliveredFallbackList(dataDir: string): string | null {
  const file = path.join(dataDir, 'updates', 'targets', FALLBACK_LIST_TARGET);
  return existsSync(file) ? file : null;
}

/**
 * Fetching and verifying Parley's release repository (docs/protocol.md) with tuf-js.
 *
 * Every source — an upstream, a peer mirror — may be hostile. A sync or a download tries the
 * sources in order; with each, tuf-js runs the whole client workflow (root rotation chain,
 * timestamp, snapshot, targets, each checked for signatures against thresholds, versions
 * against rollback, expiry against freeze, lengths against endless data, hashes against
 * substitution) starting from the metadata this server already trusts. Only metadata and
 * targets that passed are kept; a source that fails is reported and the next one is tried,
 * so one hostile or dead mirror changes nothing.
 */

export interface UpdateLimits {
  /** Largest root, timestamp, snapshot and targets metadata files accepted. */
  maxMetadataBytes: number;
  /** Largest target accepted (the targets metadata also names each one's length). */
  maxTargetBytes: number;
  /** Most targets mirrored. */
  maxTargets: number;
  fetchTimeoutMs: number;
}

export const DEFAULT_UPDATE_LIMITS: UpdateLimits = {
  maxMetadataBytes: 512 * 1024,
  maxTargetBytes: 200 * 1024 * 1024,
  maxTargets: 64,
  fetchTimeoutMs: 30_000,
};

export interface SourceFailure {
  source: string;
  error: string;
}

function updaterConfig(limits: UpdateLimits) {
  return {
    rootMaxLength: limits.maxMetadataBytes,
    timestampMaxLength: Math.min(limits.maxMetadataBytes, 64 * 1024),
    snapshotMaxLength: limits.maxMetadataBytes,
    targetsMaxLength: limits.maxMetadataBytes,
    fetchTimeout: limits.fetchTimeoutMs,
    fetchRetries: 0,
  };
}

/** `<class>: <message>`: tuf-js's error classes (BadVersionError, …) keep the name `Error`. */
function describe(err: unknown): string {
  const e = err as Error;
  const name = e?.name && e.name !== 'Error' ? e.name : (e?.constructor?.name ?? 'Error');
  return `${name}: ${e?.message ?? String(err)}`;
}

/**
 * A verified copy of the repository under `dir` (metadata/ and targets/), refreshed from
 * `sources` (base URLs that serve metadata/ and targets/ under them). `trustedRoot` is the
 * root this server was installed with; after a sync the newest verified root is trusted.
 */
export class UpdateMirror {
  lastSync: { ts: number; source: string; version: number } | null = null;
  lastFailures: SourceFailure[] = [];

  /** Set when federation runs: mirrors found in the bootstrap list are reached through it. */
  federation: FederationClient | undefined;

  constructor(
    readonly dir: string,
    private readonly trustedRoot: () => Promise<Buffer>,
    private readonly limits: UpdateLimits = DEFAULT_UPDATE_LIMITS,
  ) {}

  get metadataDir(): string {
    return path.join(this.dir, 'metadata');
  }
  get targetsDir(): string {
    return path.join(this.dir, 'targets');
  }

  /**
   * What a sync starts from: the verified metadata held (root, and the timestamp, snapshot and
   * targets tuf-js then checks newer ones against: an older release is a rollback), else the
   * installed root alone.
   */
  private async seed(metadataDir: string): Promise<void> {
    if (!existsSync(path.join(this.metadataDir, 'root.json'))) {
      await writeFile(path.join(metadataDir, 'root.json'), await this.trustedRoot());
      return;
    }
    for (const role of ['root', 'timestamp', 'snapshot', 'targets']) {
      const held = path.join(this.metadataDir, `${role}.json`);
      if (existsSync(held)) await cp(held, path.join(metadataDir, `${role}.json`));
    }
  }

  /** Syncs from the first source that passes every check. Throws when none does. */
  async sync(sources: string[], now = Date.now()): Promise<{ source: string; version: number; targets: string[] }> {
    const failures: SourceFailure[] = [];
    await mkdir(this.dir, { recursive: true });
    for (const source of sources) {
      const work = await mkdtemp(path.join(this.dir, '.sync-'));
      try {
        const metadataDir = path.join(work, 'metadata');
        const targetsDir = path.join(work, 'targets');
        await mkdir(metadataDir, { recursive: true });
        await mkdir(targetsDir, { recursive: true });
        await this.seed(metadataDir);
        // tuf-js (and its HTTP stack) is loaded on the first sync, not with the server.
        const { RecordingFetcher, Updater } = await import('./tuf-client.js');
        const fetcher = new RecordingFetcher(this.limits.fetchTimeoutMs, this.federation, this.limits.maxTargetBytes);
        const updater = new Updater({
          metadataDir,
          metadataBaseUrl: `${source.replace(/\/$/, '')}/metadata`,
          targetDir: targetsDir,
          targetBaseUrl: `${source.replace(/\/$/, '')}/targets`,
          fetcher,
          config: updaterConfig(this.limits),
        });
        await updater.refresh();
        const targetsMeta = JSON.parse(await readFile(path.join(metadataDir, 'targets.json'), 'utf8')) as {
          signed: { targets: Record<string, { length: number }> };
        };
        const names = Object.keys(targetsMeta.signed.targets);
        if (names.length > this.limits.maxTargets) throw new Error(`${names.length} targets: more than ${this.limits.maxTargets}`);
        for (const name of names) {
          const info = (await updater.getTargetInfo(name)) as TargetFile;
          if (info.length > this.limits.maxTargetBytes) throw new Error(`target ${name} is ${info.length} bytes: over the cap`);
          const file = path.join(targetsDir, name);
          await mkdir(path.dirname(file), { recursive: true });
          await updater.downloadTarget(info, file);
        }
        // The root chain, for the clients and mirrors behind us (each link verified above).
        const root = JSON.parse(await readFile(path.join(metadataDir, 'root.json'), 'utf8')) as { signed: { version: number } };
        const version = root.signed.version;
        const previous = path.join(this.metadataDir);
        for (let v = 1; v <= version; v++) {
          const name = `${v}.root.json`;
          const bytes = fetcher.roots.get(v) ?? (existsSync(path.join(previous, name)) ? await readFile(path.join(previous, name)) : null);
          if (bytes) await writeFile(path.join(metadataDir, name), bytes);
        }
        if (!existsSync(path.join(metadataDir, `${version}.root.json`)))
          await writeFile(path.join(metadataDir, `${version}.root.json`), await readFile(path.join(metadataDir, 'root.json')));
        // Swap the verified copy in whole.
        const old = `${this.dir}/.old-${process.pid}-${now}`;
        if (existsSync(this.metadataDir)) await rename(this.metadataDir, `${old}-metadata`);
        if (existsSync(this.targetsDir)) await rename(this.targetsDir, `${old}-targets`);
        await rename(metadataDir, this.metadataDir);
        await rename(targetsDir, this.targetsDir);
        await rm(`${old}-metadata`, { recursive: true, force: true });
        await rm(`${old}-targets`, { recursive: true, force: true });
        this.lastSync = { ts: now, source, version };
        this.lastFailures = failures;
        return { source, version, targets: names };
      } catch (err) {
        failures.push({ source, error: describe(err) });
      } finally {
        await rm(work, { recursive: true, force: true });
      }
    }
    this.lastFailures = failures;
    throw new Error(`no source passed verification: ${failures.map((f) => `${f.source}: ${f.error}`).join('; ')}`);
  }

  /** The verified targets metadata held (what a release offers), or null before the first sync. */
  async targets(): Promise<Record<string, { length: number; hashes: Record<string, string>; custom?: Record<string, unknown> }> | null> {
    const file = path.join(this.metadataDir, 'targets.json');
    if (!existsSync(file)) return null;
    return (JSON.parse(await readFile(file, 'utf8')) as { signed: { targets: Record<string, never> } }).signed.targets;
  }
}

/**
 * A client of the network's mirrors: downloads one target, verified, trying `mirrors` in
 * order. `metadataDir` keeps what it trusts between runs (seeded with the installed root).
 */
export async function fetchVerifiedTarget(o: {
  metadataDir: string;
  trustedRoot: Buffer;
  mirrors: string[];
  target: string;
  into: string;
  limits?: UpdateLimits;
}): Promise<{ mirror: string; file: string; failures: SourceFailure[] }> {
  const limits = o.limits ?? DEFAULT_UPDATE_LIMITS;
  await mkdir(o.metadataDir, { recursive: true });
  if (!existsSync(path.join(o.metadataDir, 'root.json'))) await writeFile(path.join(o.metadataDir, 'root.json'), o.trustedRoot);
  const failures: SourceFailure[] = [];
  const { RecordingFetcher, Updater } = await import('./tuf-client.js');
  for (const mirror of o.mirrors) {
    // Each attempt starts from the trusted copy; tuf-js persists only what verified.
    const scratch = await mkdtemp(`${o.metadataDir}.try-`);
    try {
      await cp(o.metadataDir, scratch, { recursive: true });
      const updater = new Updater({
        metadataDir: scratch,
        metadataBaseUrl: `${mirror.replace(/\/$/, '')}/metadata`,
        targetBaseUrl: `${mirror.replace(/\/$/, '')}/targets`,
        fetcher: new RecordingFetcher(limits.fetchTimeoutMs, undefined, limits.maxTargetBytes),
        config: updaterConfig(limits),
      });
      await updater.refresh();
      const info = await updater.getTargetInfo(o.target);
      if (!info) throw new Error(`the release names no target ${o.target}`);
      if (info.length > limits.maxTargetBytes) throw new Error(`target ${o.target} is ${info.length} bytes: over the cap`);
      await mkdir(path.dirname(o.into), { recursive: true });
      const file = await updater.downloadTarget(info, o.into);
      await cp(scratch, o.metadataDir, { recursive: true });
      return { mirror, file, failures };
    } catch (err) {
      failures.push({ source: mirror, error: describe(err) });
    } finally {
      await rm(scratch, { recursive: true, force: true });
    }
  }
  throw Object.assign(new Error(`no mirror served a verified ${o.target}: ${failures.map((f) => `${f.source}: ${f.error}`).join('; ')}`), {
    failures,
  });
}
