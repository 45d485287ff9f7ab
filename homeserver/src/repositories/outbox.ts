import type { DestinationState } from '@parley/federation/delivery';
import type { Knex } from 'knex';
import type { Db } from '../db/database.js';

/** 'event': entries we host, in order; 'edu': ephemeral data; 'submit': our events for a room another server hosts, queued while it was unreachable. */
export type OutboxKind = 'event' | 'edu' | 'submit';

export interface OutboxRow {
  id: number;
  destination: string;
  kind: OutboxKind;
  payload: Record<string, unknown>;
  created_ts: number;
}

export interface DestinationRow {
  name: string;
  state: 'up' | 'backing_off' | 'down';
  failures: number;
  next_try_ts: number | null;
  since_ts: number | null;
  last_success_ts: number | null;
  last_error: string | null;
}

export interface DestinationOverview {
  name: string;
  state: DestinationRow['state'];
  failures: number;
  next_try_ts: number | null;
  since_ts: number | null;
  last_success_ts: number | null;
  last_error: string | null;
  pending: { events: number; edus: number; submits: number };
  oldest_pending_ts: number | null;
  expired: number;
}

export function stateOf(row: DestinationRow | undefined): DestinationState {
  if (!row || row.state === 'up') return { kind: 'up' };
  return { kind: row.state, failures: row.failures, nextTryTs: row.next_try_ts ?? 0, sinceTs: row.since_ts ?? 0 };
}

// Rows per INSERT (5 parameters each, far below Postgres's 65,535).
const ENQUEUE_SLICE = 1000;

export class OutboxRepository {
  constructor(private readonly db: Db) {}

  /** One row per destination, in the caller's transaction (the one that persists the event). */
  async enqueue(
    destinations: string[],
    kind: OutboxKind,
    payload: Record<string, unknown>,
    now: number,
    ttlMs: number,
    trx: Db,
  ): Promise<void> {
    if (destinations.length === 0) return;
    const json = JSON.stringify(payload);
    await trx('outbox').insert(
      destinations.map((destination) => ({ destination, kind, payload: json, created_ts: now, expires_ts: now + ttlMs })),
    );
  }

  /**
   * Several payloads for the same destinations in one statement (per slice of rows), in order:
   * row ids follow the payloads' order, so each destination is delivered them in that order.
   */
  async enqueueMany(
    destinations: string[],
    kind: OutboxKind,
    payloads: Array<Record<string, unknown>>,
    now: number,
    ttlMs: number,
    trx: Db,
  ): Promise<void> {
    for (const q of this.enqueueQueries(destinations, kind, payloads, now, ttlMs, trx))
      await trx.raw(q.sql, q.bindings as Knex.RawBinding[]);
  }

  /** The INSERTs `enqueueMany` runs, built but not run: parts of a larger statement. */
  enqueueQueries(
    destinations: string[],
    kind: OutboxKind,
    payloads: Array<Record<string, unknown>>,
    now: number,
    ttlMs: number,
    trx: Db,
  ): Knex.Sql[] {
    if (destinations.length === 0 || payloads.length === 0) return [];
    const rows = payloads.flatMap((payload) => {
      const json = JSON.stringify(payload);
      return destinations.map((destination) => ({ destination, kind, payload: json, created_ts: now, expires_ts: now + ttlMs }));
    });
    const out: Knex.Sql[] = [];
    for (let i = 0; i < rows.length; i += ENQUEUE_SLICE)
      out.push(
        trx('outbox')
          .insert(rows.slice(i, i + ENQUEUE_SLICE))
          .toSQL(),
      );
    return out;
  }

  /** With `now`, rows past their TTL that the sweep has not marked yet are left out too. */
  async pending(destination: string, kind: OutboxKind, limit: number, now?: number): Promise<OutboxRow[]> {
    const q = this.db<OutboxRow>('outbox').where({ destination, kind }).whereNull('delivered_ts').whereNull('expired_ts');
    if (now !== undefined) q.andWhere('expires_ts', '>', now);
    return q.orderBy('id', 'asc').limit(limit).select('id', 'destination', 'kind', 'payload', 'created_ts');
  }

  /**
   * What one delivery batch to `destination` takes, in one round trip: the oldest pending
   * events, unexpired EDUs and submits, each up to its limit (0 leaves that kind out), each in
   * outbox order.
   */
  async pendingBatch(destination: string, limits: Record<OutboxKind, number>, now: number): Promise<Record<OutboxKind, OutboxRow[]>> {
    const cols = 'id, destination, kind, payload, created_ts';
    const open = 'destination = ? and delivered_ts is null and expired_ts is null';
    const { rows } = (await this.db.raw(
      `(select ${cols} from outbox where ${open} and kind = 'event' order by id limit ?)
       union all (select ${cols} from outbox where ${open} and kind = 'edu' and expires_ts > ? order by id limit ?)
       union all (select ${cols} from outbox where ${open} and kind = 'submit' order by id limit ?)`,
      [destination, limits.event, destination, now, limits.edu, destination, limits.submit],
    )) as { rows: OutboxRow[] };
    const out: Record<OutboxKind, OutboxRow[]> = { event: [], edu: [], submit: [] };
    for (const row of rows.sort((x, y) => Number(x.id) - Number(y.id))) out[row.kind].push(row);
    return out;
  }

  /** Whether `destination` has undelivered rows of `kind` (queued submits keep their order). */
  async hasPending(destination: string, kind: OutboxKind, trx: Db = this.db): Promise<boolean> {
    const row = await trx('outbox').where({ destination, kind }).whereNull('delivered_ts').whereNull('expired_ts').first('id');
    return row !== undefined;
  }

  /** Whether anything waits for `destination`. */
  async hasPendingAny(destination: string): Promise<boolean> {
    const row = await this.db('outbox').where({ destination }).whereNull('delivered_ts').whereNull('expired_ts').first('id');
    return row !== undefined;
  }

  async markDelivered(ids: number[], now: number): Promise<void> {
    if (ids.length > 0) await this.db('outbox').whereIn('id', ids).update({ delivered_ts: now });
  }

  /**
   * Marks what outlived its TTL; returns how many rows per destination expired, apart for
   * coalesced state (typing, presence, receipts), whose expiry is by design.
   */
  async expire(now: number): Promise<Array<{ destination: string; n: number; coalesced: boolean }>> {
    const rows = await this.db('outbox')
      .whereNull('delivered_ts')
      .whereNull('expired_ts')
      .where('expires_ts', '<', now)
      .update({ expired_ts: now })
      .returning(['destination', 'coalesce_key']);
    const counts = new Map<string, { destination: string; n: number; coalesced: boolean }>();
    for (const r of rows as Array<{ destination: string; coalesce_key: string | null }>) {
      const coalesced = r.coalesce_key !== null;
      const key = `${coalesced ? 'c' : 'd'}${r.destination}`;
      const entry = counts.get(key) ?? { destination: r.destination, n: 0, coalesced };
      entry.n += 1;
      counts.set(key, entry);
    }
    return [...counts.values()];
  }

  /** Destinations with pending rows whose next try is due. */
  async due(now: number): Promise<string[]> {
    const rows = await this.db('outbox as o')
      .leftJoin('destinations as d', 'd.name', 'o.destination')
      .whereNull('o.delivered_ts')
      .whereNull('o.expired_ts')
      .andWhere((q) => q.whereNull('d.next_try_ts').orWhere('d.state', 'up').orWhere('d.next_try_ts', '<=', now))
      .distinct('o.destination');
    return (rows as Array<{ destination: string }>).map((r) => r.destination);
  }

  async depth(): Promise<Array<{ destination: string; n: number }>> {
    return this.db('outbox')
      .whereNull('delivered_ts')
      .whereNull('expired_ts')
      .groupBy('destination')
      .select<{ destination: string; n: number }[]>('destination', this.db.raw('count(*)::int as n'));
  }

  /**
   * Every destination we have state or rows for: its delivery state and what waits for it
   * (pending rows per kind, the oldest one's age) and how many rows expired (admin view).
   */
  async overview(): Promise<DestinationOverview[]> {
    const counts = await this.db('outbox')
      .groupBy('destination')
      .select<Array<{ destination: string; events: number; edus: number; submits: number; oldest: string | null; expired: number }>>(
        'destination',
        this.db.raw(`count(*) filter (where delivered_ts is null and expired_ts is null and kind = 'event')::int as events`),
        this.db.raw(`count(*) filter (where delivered_ts is null and expired_ts is null and kind = 'edu')::int as edus`),
        this.db.raw(`count(*) filter (where delivered_ts is null and expired_ts is null and kind = 'submit')::int as submits`),
        this.db.raw('min(created_ts) filter (where delivered_ts is null and expired_ts is null) as oldest'),
        this.db.raw('count(*) filter (where expired_ts is not null)::int as expired'),
      );
    const byName = new Map(counts.map((c) => [c.destination, c]));
    const states = new Map((await this.destinations()).map((d) => [d.name, d]));
    const names = [...new Set([...byName.keys(), ...states.keys()])].sort();
    return names.map((name) => {
      const d = states.get(name);
      const c = byName.get(name);
      return {
        name,
        state: d?.state ?? 'up',
        failures: d?.failures ?? 0,
        next_try_ts: d?.next_try_ts === null || d?.next_try_ts === undefined ? null : Number(d.next_try_ts),
        since_ts: d?.since_ts === null || d?.since_ts === undefined ? null : Number(d.since_ts),
        last_success_ts: d?.last_success_ts === null || d?.last_success_ts === undefined ? null : Number(d.last_success_ts),
        last_error: d?.last_error ?? null,
        pending: { events: c?.events ?? 0, edus: c?.edus ?? 0, submits: c?.submits ?? 0 },
        oldest_pending_ts: c?.oldest === null || c?.oldest === undefined ? null : Number(c.oldest),
        expired: c?.expired ?? 0,
      };
    });
  }

  /** An operator's "retry now": the destination is treated as up; the next sweep drains it. */
  async resetState(name: string): Promise<boolean> {
    const n = await this.db('destinations').where({ name }).update({ state: 'up', failures: 0, next_try_ts: null, since_ts: null });
    return n > 0;
  }

  async destination(name: string): Promise<DestinationRow | undefined> {
    return this.db<DestinationRow>('destinations').where({ name }).first();
  }

  async destinations(): Promise<DestinationRow[]> {
    return this.db<DestinationRow>('destinations').orderBy('name');
  }

  async saveState(name: string, state: DestinationState, extra: { lastSuccessTs?: number; lastError?: string | null }): Promise<void> {
    const row: Record<string, unknown> = {
      name,
      state: state.kind,
      failures: state.kind === 'up' ? 0 : state.failures,
      next_try_ts: state.kind === 'up' ? null : state.nextTryTs,
      since_ts: state.kind === 'up' ? null : state.sinceTs,
    };
    if (extra.lastSuccessTs !== undefined) row.last_success_ts = extra.lastSuccessTs;
    if (extra.lastError !== undefined) row.last_error = extra.lastError;
    await this.db('destinations').insert(row).onConflict('name').merge();
  }

  /** Records an inbound transaction; false when (origin, txn) was seen before. */
  async recordInbound(origin: string, txnId: string, now: number, trx: Db = this.db): Promise<boolean> {
    const rows = await trx('inbound_txns')
      .insert({ origin, txn_id: txnId, received_ts: now })
      .onConflict(['origin', 'txn_id'])
      .ignore()
      .returning('txn_id');
    return rows.length === 1;
  }
}
