import type { RelayRequestEnvelope } from '@parley/federation/relay';
import type { Db } from '../db/database.js';

export interface HeldRow {
  id: number;
  origin: string;
  destination: string;
  txn_id: string;
  envelope: RelayRequestEnvelope;
  body_sha256: string;
  bytes: number;
  received_ts: number;
  expires_ts: number;
  next_try_ts: number;
  attempts: number;
  delivered_ts: number | null;
  answer: unknown;
  last_error: string | null;
}

/** Transactions a relay holds for other servers (store-and-forward, docs/protocol.md). */
export class RelayHeldRepository {
  constructor(private readonly db: Db) {}

  async find(origin: string, destination: string, txnId: string): Promise<HeldRow | undefined> {
    return this.db<HeldRow>('relay_held').where({ origin, destination, txn_id: txnId }).first();
  }

  /** Undelivered transactions held for one origin, and their bytes. */
  async usageOf(origin: string): Promise<{ n: number; bytes: number }> {
    const row = await this.db('relay_held')
      .where({ origin })
      .whereNull('delivered_ts')
      .select(this.db.raw('count(*)::int as n'), this.db.raw('coalesce(sum(bytes), 0)::bigint as bytes'))
      .first();
    return { n: Number(row?.n ?? 0), bytes: Number(row?.bytes ?? 0) };
  }

  /** Bytes held undelivered on the whole relay. */
  async totalBytes(): Promise<number> {
    const row = await this.db('relay_held')
      .whereNull('delivered_ts')
      .select(this.db.raw('coalesce(sum(bytes), 0)::bigint as bytes'))
      .first();
    return Number(row?.bytes ?? 0);
  }

  /** Inserts a new held transaction; undefined when another copy got in first. */
  async insert(row: Omit<HeldRow, 'id' | 'attempts' | 'delivered_ts' | 'answer' | 'last_error'>): Promise<HeldRow | undefined> {
    const rows = await this.db<HeldRow>('relay_held')
      .insert({ ...row, envelope: JSON.stringify(row.envelope) as unknown as RelayRequestEnvelope })
      .onConflict(['origin', 'destination', 'txn_id'])
      .ignore()
      .returning('*');
    return rows[0];
  }

  /** A fresher signed copy of the same transaction replaces the held one (its signature would go stale). */
  async refresh(id: number, envelope: RelayRequestEnvelope, expiresTs: number, now: number): Promise<void> {
    await this.db('relay_held')
      .where({ id })
      .whereNull('delivered_ts')
      .update({ envelope: JSON.stringify(envelope), expires_ts: expiresTs, next_try_ts: now });
  }

  async due(now: number, limit: number): Promise<HeldRow[]> {
    return this.db<HeldRow>('relay_held')
      .whereNull('delivered_ts')
      .where('next_try_ts', '<=', now)
      .where('expires_ts', '>', now)
      .orderBy('next_try_ts')
      .limit(limit);
  }

  async delivered(id: number, now: number, answer: unknown): Promise<void> {
    await this.db('relay_held')
      .where({ id })
      .update({ delivered_ts: now, answer: JSON.stringify(answer ?? null), last_error: null });
  }

  async failed(id: number, nextTryTs: number, error: string): Promise<void> {
    await this.db('relay_held')
      .where({ id })
      .update({ next_try_ts: nextTryTs, last_error: error.slice(0, 500), attempts: this.db.raw('attempts + 1') });
  }

  async remove(id: number): Promise<void> {
    await this.db('relay_held').where({ id }).delete();
  }

  /** Drops what outlived its TTL (delivered or not); answers how many undelivered were dropped. */
  async expire(now: number): Promise<number> {
    const gone = await this.db('relay_held').where('expires_ts', '<=', now).delete().returning('delivered_ts');
    return gone.filter((r: { delivered_ts: number | null }) => r.delivered_ts === null).length;
  }

  async depth(): Promise<{ held: number; bytes: number }> {
    const row = await this.db('relay_held')
      .whereNull('delivered_ts')
      .select(this.db.raw('count(*)::int as n'), this.db.raw('coalesce(sum(bytes), 0)::bigint as bytes'))
      .first();
    return { held: Number(row?.n ?? 0), bytes: Number(row?.bytes ?? 0) };
  }
}
