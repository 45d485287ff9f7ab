import type { Db } from '../db/database.js';

// Two-key advisory locks live apart from the one-key ones (the stream position lock).
const COALESCE_LOCK_SPACE = 7_261_002;

/**
 * In `trx`: drops each destination's undelivered EDU row under `key` and queues `payload` as
 * the one current row (what `enqueueLatest` and device-list announcements both need).
 */
export async function replaceLatestEdu(
  trx: Db,
  destinations: string[],
  key: string,
  payload: Record<string, unknown>,
  now: number,
  ttlMs: number,
): Promise<void> {
  await trx('outbox')
    .whereIn('destination', destinations)
    .andWhere({ kind: 'edu', coalesce_key: key })
    .whereNull('delivered_ts')
    .whereNull('expired_ts')
    .delete();
  const json = JSON.stringify(payload);
  await trx('outbox').insert(
    destinations.map((destination) => ({
      destination,
      kind: 'edu',
      payload: json,
      coalesce_key: key,
      created_ts: now,
      expires_ts: now + ttlMs,
    })),
  );
}

/** Outbox rows for ephemeral data and the receiver's to-device deduplication. */
export class EduRepository {
  constructor(private readonly db: Db) {}

  /**
   * Queues `payload` for each destination as the latest state under `key` (typing, presence,
   * receipts): an older undelivered row with the same key is dropped, so a destination that
   * is backing off receives one current item per key instead of the whole history. Writes
   * with the same key are serialised, so the newer write always leaves the newer row.
   */
  async enqueueLatest(destinations: string[], key: string, payload: Record<string, unknown>, now: number, ttlMs: number): Promise<void> {
    if (destinations.length === 0) return;
    await this.db.transaction(async (trx) => {
      await trx.raw('SELECT pg_advisory_xact_lock(?, hashtext(?))', [COALESCE_LOCK_SPACE, key]);
      await replaceLatestEdu(trx, destinations, key, payload, now, ttlMs);
    });
  }

  /** Records an inbound to-device message; false when (origin, message_id) was seen before. */
  async recordToDevice(origin: string, messageId: string, now: number, trx: Db): Promise<boolean> {
    const rows = await trx('inbound_to_device')
      .insert({ origin, message_id: messageId, received_ts: now })
      .onConflict(['origin', 'message_id'])
      .ignore()
      .returning('message_id');
    return rows.length === 1;
  }

  /** Forgets message IDs older than any retry could be (the sender's outbox TTL). */
  async pruneToDevice(before: number): Promise<number> {
    return this.db('inbound_to_device').where('received_ts', '<', before).delete();
  }
}
