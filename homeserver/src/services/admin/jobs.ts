import { randomUUID } from 'node:crypto';
import type { AdminJob } from '@parley/schemas';
import type { Queue, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from '../../logger.js';
import type { JobRepository } from '../../repositories/admin/jobs.js';
import type { Clock } from '../clock.js';

export type Progress = (done: number, total: number) => void;
/** What one kind of job does, from JSON parameters alone (it may run in another process). */
export type JobHandler = (params: Record<string, unknown>, progress: Progress) => Promise<unknown>;

const QUEUE = 'parley-admin-jobs';
// Progress is written at most this often (a 100,000-member room must not mean 100,000 updates).
const PROGRESS_EVERY_MS = 250;

/**
 * Long admin operations (shutting down a big room, bulk imports, leaving every room of a
 * deactivated account) run as jobs: the request answers at once with the job, the work runs
 * elsewhere and writes its progress to `admin_jobs`, which any process can read. With Redis
 * the jobs go through BullMQ (any process of the server runs them, and one whose process
 * died is picked up again); without it, in the process that took the request. Every kind
 * maps to exactly one handler, registered before the runner starts.
 */
export class JobRunner {
  readonly #handlers = new Map<string, JobHandler>();
  readonly #running = new Map<string, Promise<void>>();
  #queue: Queue | null = null;
  #worker: Worker | null = null;
  #connections: Redis[] = [];

  constructor(
    private readonly repo: JobRepository,
    private readonly clock: Clock,
    private readonly log: Logger,
  ) {}

  register(kind: string, handler: JobHandler): void {
    if (this.#handlers.has(kind)) throw new TypeError(`job kind ${kind} already has a handler`);
    this.#handlers.set(kind, handler);
  }

  /** With Redis: jobs go through a BullMQ queue that every process of the server works on. */
  async useQueue(redis: Redis, keyPrefix: string): Promise<void> {
    const connection = redis.duplicate({ maxRetriesPerRequest: null, keyPrefix: '' });
    const workerConnection = redis.duplicate({ maxRetriesPerRequest: null, keyPrefix: '' });
    this.#connections.push(connection, workerConnection);
    const prefix = `{${keyPrefix}bull}`;
    const { Queue, Worker } = await import('bullmq');
    this.#queue = new Queue(QUEUE, { connection, prefix });
    this.#worker = new Worker(
      QUEUE,
      async (job) => this.#run(job.data.id as string, job.name, job.data.params as Record<string, unknown>),
      {
        connection: workerConnection,
        prefix,
        concurrency: 2,
        lockDuration: 30_000,
      },
    );
    this.#worker.on('error', (err) => this.log.warn({ err: err.message }, 'admin job worker error'));
    this.#queue.on('error', (err) => this.log.warn({ err: err.message }, 'admin job queue error'));
  }

  async start(kind: string, target: string | null, by: string, params: Record<string, unknown>): Promise<AdminJob> {
    if (!this.#handlers.has(kind)) throw new TypeError(`no handler for job kind ${kind}`);
    const id = randomUUID();
    await this.repo.insert({ id, kind, target, created_by: by, created_ts: this.clock.now() });
    if (this.#queue) {
      await this.#queue.add(kind, { id, params }, { jobId: id, removeOnComplete: true, removeOnFail: 1000, attempts: 1 });
    } else {
      const run = this.#run(id, kind, params).finally(() => this.#running.delete(id));
      this.#running.set(id, run);
    }
    return (await this.repo.find(id)) as AdminJob;
  }

  async #run(id: string, kind: string, params: Record<string, unknown>): Promise<void> {
    const handler = this.#handlers.get(kind);
    let lastWrite = 0;
    let pending: Promise<void> = Promise.resolve();
    const progress: Progress = (done, total) => {
      const now = Date.now();
      if (now - lastWrite < PROGRESS_EVERY_MS && done < total) return;
      lastWrite = now;
      pending = pending.then(() => this.repo.progress(id, done, total)).catch(() => {});
    };
    try {
      if (!handler) throw new Error(`no handler for job kind ${kind}`);
      const result = await handler(params, progress);
      await pending;
      await this.repo.finish(id, 'done', this.clock.now(), { result });
    } catch (err) {
      await pending;
      this.log.warn({ err: (err as Error).message, job: id, kind }, 'admin job failed');
      await this.repo.finish(id, 'failed', this.clock.now(), { error: (err as Error).message.slice(0, 500) }).catch(() => {});
    }
  }

  find(id: string): Promise<AdminJob | undefined> {
    return this.repo.find(id);
  }

  recent(limit: number): Promise<AdminJob[]> {
    return this.repo.recent(limit);
  }

  /** Waits for in-process jobs, then closes the queue (shutdown, tests). */
  async stop(): Promise<void> {
    await Promise.allSettled([...this.#running.values()]);
    await this.#worker?.close();
    await this.#queue?.close();
    for (const c of this.#connections.splice(0)) c.disconnect();
  }
}
