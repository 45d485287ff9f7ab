import type { Logger } from '../logger.js';
import type { StreamRepository } from '../repositories/stream.js';
import type { Clock } from './clock.js';

// Rows per DELETE: keeps each statement (and its locks) short on a large stream table.
const PRUNE_BATCH = 10_000;

/**
 * Stream retention: notes older than `retentionMs` are deleted, so the table does not grow
 * forever and old history cannot be replayed from it. A client resuming from a position
 * older than what is kept is answered `reset` (WebSocket `ready {reset: true}`, long-poll
 * `{reset: true}`) and fetches its rooms afresh.
 */
export class StreamRetention {
  constructor(
    private readonly repo: StreamRepository,
    private readonly clock: Clock,
    private readonly retentionMs: number,
    private readonly log: Logger,
  ) {}

  /** How often the server runs `prune` (a fraction of the window, at most hourly). */
  get intervalMs(): number {
    return Math.max(60_000, Math.min(3600_000, Math.floor(this.retentionMs / 4)));
  }

  async prune(): Promise<{ through: number; deleted: number }> {
    const result = await this.repo.prune(this.clock.now() - this.retentionMs, PRUNE_BATCH);
    if (result.deleted > 0) this.log.info({ through: result.through, deleted: result.deleted }, 'stream pruned');
    return result;
  }
}
