import type { Db } from '../../db/database.js';

export interface StatsSample {
  ts: number;
  users_total: number;
  active_today: number;
  messages: number;
  stream_position: number;
  destinations_up: number;
  destinations_backing_off: number;
  destinations_down: number;
  queue_depth: number;
}

const DAY_MS = 86_400_000;

/** Dashboard figures: periodic samples, and per-day series read from them and from users. */
export class StatsRepository {
  constructor(private readonly db: Db) {}

  /**
   * Takes one sample unless another process took one less than `minGapMs` ago (the lock
   * makes concurrent samplers of one server take turns). Answers whether it sampled.
   */
  async sample(now: number, minGapMs: number): Promise<boolean> {
    return this.db.transaction(async (trx) => {
      await trx.raw('select pg_advisory_xact_lock(hashtextextended(?, 0))', ['parley.admin.stats']);
      const last = await trx('stats_samples').orderBy('ts', 'desc').first();
      if (last && now - Number(last.ts) < minGapMs) return false;
      const from = last ? Number(last.stream_position) : 0;
      const dayStart = now - (now % DAY_MS);
      const [users] = await trx('users').select(trx.raw('count(*)::int as n'));
      const [active] = await trx('devices').where('last_seen_ts', '>=', dayStart).select(trx.raw('count(distinct user_id)::int as n'));
      const [stream] = await trx('stream').select(trx.raw('coalesce(max(position), 0) as p'));
      const to = Number(stream?.p ?? 0);
      // Stream rows of kind 'event' carry the event ID; the type is on the event row.
      const [messages] = await trx('stream as s')
        .join('events as e', 'e.event_id', trx.raw("s.data->>'event_id'"))
        .where('s.position', '>', from)
        .andWhere('s.position', '<=', to)
        .andWhere('s.kind', 'event')
        .andWhere('e.type', 'room.message')
        .select(trx.raw('count(*)::int as n'));
      const dest = await trx('destinations').groupBy('state').select('state', trx.raw('count(*)::int as n'));
      const byState = new Map(dest.map((d: { state: string; n: number }) => [d.state, d.n]));
      const [depth] = await trx('outbox').whereNull('delivered_ts').whereNull('expired_ts').select(trx.raw('count(*)::int as n'));
      await trx('stats_samples').insert({
        ts: now,
        users_total: users?.n ?? 0,
        active_today: active?.n ?? 0,
        messages: messages?.n ?? 0,
        stream_position: to,
        destinations_up: byState.get('up') ?? 0,
        destinations_backing_off: byState.get('backing_off') ?? 0,
        destinations_down: byState.get('down') ?? 0,
        queue_depth: depth?.n ?? 0,
      });
      return true;
    });
  }

  /** The figures that are cheap to read live (the dashboard's headline numbers). */
  async current(now: number): Promise<{ users: number; active_today: number; queue_depth: number }> {
    const dayStart = now - (now % DAY_MS);
    const [users] = await this.db('users').select(this.db.raw('count(*)::int as n'));
    const [active] = await this.db('devices')
      .where('last_seen_ts', '>=', dayStart)
      .select(this.db.raw('count(distinct user_id)::int as n'));
    const [depth] = await this.db('outbox').whereNull('delivered_ts').whereNull('expired_ts').select(this.db.raw('count(*)::int as n'));
    return { users: users?.n ?? 0, active_today: active?.n ?? 0, queue_depth: depth?.n ?? 0 };
  }

  async samplesSince(sinceTs: number, limit: number): Promise<StatsSample[]> {
    const rows = await this.db('stats_samples').where('ts', '>=', sinceTs).orderBy('ts', 'asc').limit(limit);
    return rows.map((r) => ({ ...r, ts: Number(r.ts), stream_position: Number(r.stream_position) }));
  }

  /** Per UTC day since `sinceTs`: new users, active users (the day's last sample), messages. */
  async daily(sinceTs: number, now: number): Promise<Array<{ day: number; new_users: number; active_users: number; messages: number }>> {
    const start = sinceTs - (sinceTs % DAY_MS);
    const newUsers = await this.db('users')
      .where('created_ts', '>=', start)
      .groupByRaw('1')
      .select(this.db.raw('(created_ts - created_ts % ?)::bigint as day', [DAY_MS]), this.db.raw('count(*)::int as n'));
    const fromSamples = await this.db('stats_samples')
      .where('ts', '>=', start)
      .groupByRaw('1')
      .select(
        this.db.raw('(ts - ts % ?)::bigint as day', [DAY_MS]),
        this.db.raw('max(active_today)::int as active'),
        this.db.raw('sum(messages)::int as messages'),
      );
    const days = new Map<number, { day: number; new_users: number; active_users: number; messages: number }>();
    for (let d = start; d <= now && days.size < 400; d += DAY_MS) days.set(d, { day: d, new_users: 0, active_users: 0, messages: 0 });
    for (const r of newUsers as Array<{ day: string; n: number }>) {
      const e = days.get(Number(r.day));
      if (e) e.new_users = r.n;
    }
    for (const r of fromSamples as Array<{ day: string; active: number; messages: number }>) {
      const e = days.get(Number(r.day));
      if (e) {
        e.active_users = r.active;
        e.messages = r.messages;
      }
    }
    return [...days.values()];
  }
}
