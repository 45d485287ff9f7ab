import type { AdminReport } from '@parley/schemas';
import type { Db } from '../../db/database.js';

type Row = Omit<AdminReport, 'id'>;

function toReport(r: Record<string, unknown>): AdminReport {
  return {
    id: Number(r.id),
    kind: r.kind as AdminReport['kind'],
    reporter: r.reporter as string,
    target_user_id: r.target_user_id as string,
    room_id: (r.room_id as string | null) ?? null,
    event_id: (r.event_id as string | null) ?? null,
    reason: r.reason as string,
    event_snapshot: r.event_snapshot ?? null,
    created_ts: Number(r.created_ts),
    state: r.state as AdminReport['state'],
    assignee: (r.assignee as string | null) ?? null,
    resolved_by: (r.resolved_by as string | null) ?? null,
    resolved_ts: r.resolved_ts === null ? null : Number(r.resolved_ts),
    resolution: (r.resolution as string | null) ?? null,
  };
}

export class ReportRepository {
  constructor(private readonly db: Db) {}

  async insert(row: Omit<Row, 'state' | 'assignee' | 'resolved_by' | 'resolved_ts' | 'resolution'>): Promise<AdminReport> {
    const [inserted] = await this.db('reports')
      .insert({ ...row, event_snapshot: row.event_snapshot === null ? null : JSON.stringify(row.event_snapshot) })
      .returning('*');
    return toReport(inserted);
  }

  /** Open reports from one reporter about one target in the last window (anti-flood). */
  async recentFrom(reporter: string, sinceTs: number): Promise<number> {
    const [row] = await this.db('reports').where({ reporter }).andWhere('created_ts', '>=', sinceTs).count<{ n: string }[]>({ n: '*' });
    return Number(row?.n ?? 0);
  }

  async find(id: number): Promise<AdminReport | undefined> {
    const row = await this.db('reports').where({ id }).first();
    return row ? toReport(row) : undefined;
  }

  async list(state: 'open' | 'resolved' | 'all', limit: number, before?: number): Promise<AdminReport[]> {
    const q = this.db('reports');
    if (state !== 'all') q.where({ state });
    if (before !== undefined) q.where('id', '<', before);
    return (await q.orderBy('id', state === 'open' ? 'asc' : 'desc').limit(limit)).map(toReport);
  }

  async assign(id: number, assignee: string | null, now: number): Promise<AdminReport | undefined> {
    const [row] = await this.db('reports')
      .where({ id })
      .update({ assignee, assigned_ts: assignee ? now : null })
      .returning('*');
    return row ? toReport(row) : undefined;
  }

  async resolve(id: number, by: string, resolution: string, now: number): Promise<AdminReport | undefined> {
    const [row] = await this.db('reports')
      .where({ id, state: 'open' })
      .update({ state: 'resolved', resolved_by: by, resolved_ts: now, resolution })
      .returning('*');
    return row ? toReport(row) : undefined;
  }

  /** Counts and time-to-resolve figures (ms) over reports resolved since `sinceTs`. */
  async figures(
    sinceTs: number,
  ): Promise<{ open: number; resolved: number; median_ms: number | null; p90_ms: number | null; oldest_open_ts: number | null }> {
    const [counts] = await this.db('reports').select(
      this.db.raw(`count(*) filter (where state = 'open')::int as open`),
      this.db.raw(`min(created_ts) filter (where state = 'open') as oldest`),
    );
    const [ttr] = await this.db('reports')
      .where({ state: 'resolved' })
      .andWhere('resolved_ts', '>=', sinceTs)
      .select(
        this.db.raw('count(*)::int as n'),
        this.db.raw('percentile_cont(0.5) within group (order by resolved_ts - created_ts) as median'),
        this.db.raw('percentile_cont(0.9) within group (order by resolved_ts - created_ts) as p90'),
      );
    return {
      open: counts?.open ?? 0,
      resolved: ttr?.n ?? 0,
      median_ms: ttr?.median === null || ttr?.median === undefined ? null : Math.round(Number(ttr.median)),
      p90_ms: ttr?.p90 === null || ttr?.p90 === undefined ? null : Math.round(Number(ttr.p90)),
      oldest_open_ts: counts?.oldest === null || counts?.oldest === undefined ? null : Number(counts.oldest),
    };
  }
}
