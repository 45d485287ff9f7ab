import { createHash } from 'node:crypto';
import { createReadStream, existsSync, readFileSync } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Config } from '../config.js';
import type { Logger } from '../logger.js';
import type { Clock } from '../services/clock.js';
import { UpdateMirror } from './mirror.js';

/**
 * The homeserver's side of signed update mirrors: with `updates.mirror` or a
 * `updates.trusted_root`, it syncs the release repository from `updates.upstreams` and the
 * mirrors the bootstrap list names (each verified with tuf-js from the trusted root on) every
 * `check_interval_ms`, keeps the verified copy in data_dir/updates and tells admins what the
 * newest verified release offers. Only with `updates.mirror` does it serve that copy under
 * /updates/ to anyone.
 */
export class UpdateService {
  readonly mirror: UpdateMirror;
  #timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly config: Config,
    private readonly clock: Clock,
    private readonly log: Logger,
  ) {
    const u = config.updates;
    this.mirror = new UpdateMirror(
      path.join(config.data_dir, 'updates'),
      async () => {
        if (!u.trusted_root) throw new Error('updates.trusted_root is not set: there is no root to start from');
        return readFile(u.trusted_root);
      },
      { maxMetadataBytes: u.max_metadata_bytes, maxTargetBytes: u.max_target_bytes, maxTargets: u.max_targets, fetchTimeoutMs: 30_000 },
    );
  }

  /** Set when federation runs: other mirrors from the bootstrap list (`mirror` capability). */
  discover: () => string[] = () => [];

  /** Serves the verified copy under /updates/. */
  get enabled(): boolean {
    return this.config.updates.mirror;
  }

  /** Checks for releases: a mirror, or a server given a root to verify them with. */
  get checks(): boolean {
    return this.config.updates.mirror || this.config.updates.trusted_root !== null;
  }

  /** Configured upstreams first, then mirrors the bootstrap list names. */
  sources(): string[] {
    return [...new Set([...this.config.updates.upstreams, ...this.discover()])];
  }

  /** One sync from the upstreams; failures are logged and kept for the admin page. */
  async check(): Promise<boolean> {
    try {
      const sources = this.sources();
      if (sources.length === 0) throw new Error('no upstream configured and no mirror in the bootstrap list yet');
      const r = await this.mirror.sync(sources, this.clock.now());
      this.log.info({ source: r.source, root_version: r.version, targets: r.targets.length }, 'release repository verified and mirrored');
      return true;
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'release repository sync failed');
      return false;
    }
  }

  start(): void {
    if (!this.checks) return;
    this.check().catch(() => {});
    this.#timer = setInterval(() => this.check().catch(() => {}), this.config.updates.check_interval_ms);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
  }

  #activeClient: string | null | undefined;
  get #clientState(): string {
    return path.join(this.config.data_dir, 'updates-client.json');
  }

  /** The directory of the web client bundle an admin switched to, or null for the built-in one. */
  activeClientDir(): string | null {
    if (this.#activeClient === undefined) {
      try {
        const saved = existsSync(this.#clientState) ? (JSON.parse(readFileSync(this.#clientState, 'utf8')) as { dir?: string }) : {};
        this.#activeClient = saved.dir && existsSync(path.join(saved.dir, 'index.html')) ? saved.dir : null;
      } catch {
        this.#activeClient = null;
      }
    }
    return this.#activeClient;
  }

  /**
   * Serves the web client from a verified release file (a .tgz of the built client, its
   * files under one top folder) from now on, without a restart. The file is checked again
   * against the verified targets metadata, unpacked with a size and count cap into
   * data_dir/client-bundles/<sha256>/, and must hold an index.html.
   */
  async activateClient(targetPath: string): Promise<{ dir: string; sha256: string }> {
    const targets = await this.mirror.targets();
    const info = targets?.[targetPath];
    if (!info) throw new UpdateError(`the verified release has no file ${targetPath}`);
    const kind = info.custom?.kind;
    if (kind !== undefined && kind !== 'web-client')
      throw new UpdateError(`${targetPath} is a release file of kind ${String(kind)}, not a web client`);
    const file = path.join(this.mirror.targetsDir, targetPath);
    const hash = createHash('sha256');
    let length = 0;
    for await (const chunk of createReadStream(file)) {
      hash.update(chunk as Buffer);
      length += (chunk as Buffer).length;
    }
    const sha256 = hash.digest('hex');
    if (sha256 !== info.hashes.sha256 || length !== info.length) throw new UpdateError(`${targetPath} no longer matches its signed hash`);
    const dir = path.join(this.config.data_dir, 'client-bundles', sha256.slice(0, 32));
    if (!existsSync(path.join(dir, 'index.html'))) {
      const tmp = `${dir}.unpacking`;
      await rm(tmp, { recursive: true, force: true });
      await mkdir(tmp, { recursive: true });
      let files = 0;
      let bytes = 0;
      try {
        // tar loads when a client bundle is unpacked, not with the server.
        const { extract } = await import('tar');
        await extract({
          file,
          cwd: tmp,
          strip: 1,
          // No links, nothing outside the folder (tar refuses absolute and .. paths), capped.
          filter: (_p, entry) => {
            const e = entry as { type?: string; size?: number };
            if (e.type !== 'File' && e.type !== 'Directory') return false;
            files++;
            bytes += e.size ?? 0;
            if (files > 10_000 || bytes > this.config.updates.max_target_bytes)
              throw new UpdateError(`${targetPath} unpacks to more than the cap`);
            return true;
          },
        });
      } catch (err) {
        await rm(tmp, { recursive: true, force: true });
        if (err instanceof UpdateError) throw err;
        throw new UpdateError(`${targetPath} is not a web client bundle (a gzipped tar): ${(err as Error).message}`);
      }
      if (!existsSync(path.join(tmp, 'index.html'))) {
        await rm(tmp, { recursive: true, force: true });
        throw new UpdateError(`${targetPath} holds no index.html under its top folder: not a web client bundle`);
      }
      await rename(tmp, dir);
    }
    await writeFile(this.#clientState, JSON.stringify({ dir, target: targetPath, sha256 }));
    this.#activeClient = dir;
    this.log.info({ target: targetPath, sha256 }, 'web client switched to a verified release');
    return { dir, sha256 };
  }

  /** Back to the web client built with this server. */
  async deactivateClient(): Promise<void> {
    await rm(this.#clientState, { force: true });
    this.#activeClient = null;
  }

  /** What the admin console shows: the newest verified release's files, notes and the last sync. */
  async status(): Promise<Record<string, unknown>> {
    const targets = await this.mirror.targets();
    return {
      client_bundle: this.activeClientDir() ? JSON.parse(readFileSync(this.#clientState, 'utf8')) : null,
      mirror: this.config.updates.mirror,
      checks: this.checks,
      upstreams: this.config.updates.upstreams,
      last_sync: this.mirror.lastSync,
      failures: this.mirror.lastFailures,
      release: targets
        ? Object.entries(targets).map(([name, t]) => ({ path: name, length: t.length, sha256: t.hashes.sha256, ...(t.custom ?? {}) }))
        : null,
    };
  }
}

export class UpdateError extends Error {}
