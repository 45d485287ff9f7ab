import { randomUUID } from 'node:crypto';
import type { AdminJob } from '@parley/schemas';
import type { Logger } from '../../logger.js';
import type { JobRepository } from '../../repositories/admin/jobs.js';
import type { Clock } from '../clock.js';

export type Progress = (done: number, total: number) => void;
export type JobWork = (progress: Progress) => Promise<unknown>;

// Progress is written at most this often (a 100,000-member room must not mean 100,000 updates).
const PROGRESS_EVERY_MS = 250;

/**
 * Long admin operations (shutting down a big room, bulk imports, leaving every room of a
 * deactivated account) run as jobs: the request answers at once with the job, the work goes
 * on in this process and writes its progress to `admin_jobs`, which any process can read.
 */
export class JobRunner {
  readonly #running = new Map<string, Promise<void>>();

  constructor(
    private readonly repo: JobRepository,
    private readonly clock: Clock,
    private readonly log: Logger,
  ) {}

  async start(kind: string, target: string | null, by: string, work: JobWork): Promise<AdminJob> {
    const id = randomUUID();
    await this.repo.insert({ id, kind, target, created_by: by, created_ts: this.clock.now() });
    let lastWrite = 0;
    let pending: Promise<void> = Promise.resolve();
    const progress: Progress = (done, total) => {
      const now = Date.now();
      if (now - lastWrite < PROGRESS_EVERY_MS && done < total) return;
      lastWrite = now;
      pending = pending.then(() => this.repo.progress(id, done, total)).catch(() => {});
    };
    const run = (async () => {
      try {
        const result = await work(progress);
        await pending;
        await this.repo.finish(id, 'done', this.clock.now(), { result });
      } catch (err) {
        await pending;
        this.log.warn({ err: (err as Error).message, job: id, kind }, 'admin job failed');
        await this.repo.finish(id, 'failed', this.clock.now(), { error: (err as Error).message.slice(0, 500) }).catch(() => {});
      } finally {
        this.#running.delete(id);
      }
    })();
    this.#running.set(id, run);
    return (await this.repo.find(id)) as AdminJob;
  }

  find(id: string): Promise<AdminJob | undefined> {
    return this.repo.find(id);
  }

  recent(limit: number): Promise<AdminJob[]> {
    return this.repo.recent(limit);
  }

  /** Waits for the jobs this process runs (shutdown, tests). */
  async drain(): Promise<void> {
    await Promise.allSettled([...this.#running.values()]);
  }
}
