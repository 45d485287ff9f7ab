import type { DestinationState } from '@parley/federation/delivery';
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

export function stateOf(row: DestinationRow | undefined): DestinationState {
  if (!row || row.state === 'up') return { kind: 'up' };
  return { kind: row.state, failures: row.failures, nextTryTs: row.next_try_ts ?? 0, sinceTs: row.since_ts ?? 0 };
}

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

  /** With `now`, rows past their TTL that the sweep has not marked yet are left out too. */
  async pending(destination: string, kind: OutboxKind, limit: number, now?: number): Promise<OutboxRow[]> {
    const q = this.db<OutboxRow>('outbox').where({ destination, kind }).whereNull('delivered_ts').whereNull('expired_ts');
    if (now !== undefined) q.andWhere('expires_ts', '>', now);
    return q.orderBy('id', 'asc').limit(limit).select('id', 'destination', 'kind', 'payload', 'created_ts');
  }

  /** Whether `destination` has undelivered rows of `kind` (queued submits keep their order). */
  async hasPending(destination: string, kind: OutboxKind, trx: Db = this.db): Promise<boolean> {
    const row = await trx('outbox').where({ destination, kind }).whereNull('delivered_ts').whereNull('expired_ts').first('id');
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
