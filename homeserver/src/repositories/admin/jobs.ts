import type { AdminJob } from '@parley/schemas';
import type { Db } from '../../db/database.js';

function toJob(r: Record<string, unknown>): AdminJob {
  return {
    id: r.id as string,
    kind: r.kind as string,
    target: (r.target as string | null) ?? null,
    state: r.state as AdminJob['state'],
    done: Number(r.done),
    total: Number(r.total),
    error: (r.error as string | null) ?? null,
    result: r.result ?? null,
    created_ts: Number(r.created_ts),
    finished_ts: r.finished_ts === null ? null : Number(r.finished_ts),
  };
}

export class JobRepository {
  constructor(private readonly db: Db) {}

  async insert(row: { id: string; kind: string; target: string | null; created_by: string; created_ts: number }): Promise<void> {
    await this.db('admin_jobs').insert({ ...row, state: 'running', done: 0, total: 0 });
  }

  async progress(id: string, done: number, total: number): Promise<void> {
    await this.db('admin_jobs').where({ id, state: 'running' }).update({ done, total });
  }

  async finish(id: string, state: 'done' | 'failed', now: number, extra: { error?: string; result?: unknown }): Promise<void> {
    await this.db('admin_jobs')
      .where({ id })
      .update({
        state,
        finished_ts: now,
        error: extra.error ?? null,
        result: extra.result === undefined ? null : JSON.stringify(extra.result),
      });
  }

  async find(id: string): Promise<AdminJob | undefined> {
    const row = await this.db('admin_jobs').where({ id }).first();
    return row ? toJob(row) : undefined;
  }

  async recent(limit: number): Promise<AdminJob[]> {
    return (await this.db('admin_jobs').orderBy('created_ts', 'desc').limit(limit)).map(toJob);
  }
}
