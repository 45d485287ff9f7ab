import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Config } from '../config.js';
import type { Logger } from '../logger.js';
import type { Clock } from '../services/clock.js';
import { UpdateMirror } from './mirror.js';

/**
 * The homeserver's side of signed update mirrors: with `updates.mirror`, it syncs the release
 * repository from `updates.upstreams` (each verified with tuf-js from `updates.trusted_root`
 * on) every `check_interval_ms`, keeps the verified copy in data_dir/updates, serves it under
 * /updates/ to anyone, and tells admins what the newest verified release offers.
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

  get enabled(): boolean {
    return this.config.updates.mirror && this.config.updates.upstreams.length > 0;
  }

  /** One sync from the upstreams; failures are logged and kept for the admin page. */
  async check(): Promise<boolean> {
    try {
      const r = await this.mirror.sync(this.config.updates.upstreams, this.clock.now());
      this.log.info({ source: r.source, root_version: r.version, targets: r.targets.length }, 'release repository verified and mirrored');
      return true;
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'release repository sync failed');
      return false;
    }
  }

  start(): void {
    if (!this.enabled) return;
    this.check().catch(() => {});
    this.#timer = setInterval(() => this.check().catch(() => {}), this.config.updates.check_interval_ms);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
  }

  /** What the admin console shows: the newest verified release's files, notes and the last sync. */
  async status(): Promise<Record<string, unknown>> {
    const targets = await this.mirror.targets();
    return {
      mirror: this.config.updates.mirror,
      upstreams: this.config.updates.upstreams,
      last_sync: this.mirror.lastSync,
      failures: this.mirror.lastFailures,
      release: targets
        ? Object.entries(targets).map(([name, t]) => ({ path: name, length: t.length, sha256: t.hashes.sha256, ...(t.custom ?? {}) }))
        : null,
    };
  }
}
