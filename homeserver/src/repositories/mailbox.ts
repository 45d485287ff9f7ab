import type { Db } from '../db/database.js';

export interface MailboxQueueRow {
  id: number;
  receive_id: string;
  send_id: string;
  queue_key: string;
  created_ts: number;
  /** The hour (ms, rounded down) the queue was last sent to or read. */
  last_used_ts: number;
}

export interface MailboxMessageRow {
  seq: number;
  queue_id: number;
  msg_id: string;
  block: Buffer;
  created_ts: number;
  expires_ts: number;
}

/** Aggregates for the admin view and metrics: counts and sizes, never an ID. */
export interface MailboxUsage {
  queues: number;
  blobs: number;
  bytes: number;
  expired_blobs: number;
  full_queues: number;
  fullest_queue_blobs: number;
}

// Serialises quota checks of every send on the server (any process), so concurrent sends to
// different queues cannot both pass the per-server quota. A fixed key of our own choosing.
const SERVER_QUOTA_LOCK = 0x6d61696c626f78n; // "mailbox"

/** Mailbox queues and their blocks. No column names an account (docs/protocol.md). */
export class MailboxRepository {
  constructor(private readonly db: Db) {}

  async insertQueue(row: Omit<MailboxQueueRow, 'id'>): Promise<void> {
    await this.db('mailbox_queues').insert(row);
  }

  async byReceiveId(receiveId: string): Promise<MailboxQueueRow | undefined> {
    return this.db<MailboxQueueRow>('mailbox_queues').where({ receive_id: receiveId }).first();
  }

  /**
   * Inside `trx`: takes the server-wide quota lock (held until the transaction ends), then
   * locks the queue row, so the quota checks that follow see every earlier send.
   */
  async lockForSend(sendId: string, trx: Db): Promise<MailboxQueueRow | undefined> {
    await trx.raw('select pg_advisory_xact_lock(?)', [SERVER_QUOTA_LOCK.toString()]);
    return trx<MailboxQueueRow>('mailbox_queues').where({ send_id: sendId }).forUpdate().first();
  }

  /** Marks the queue used in the hour `hourTs` (one write per queue per hour at most). */
  async touch(id: number, hourTs: number, trx: Db = this.db): Promise<void> {
    await trx('mailbox_queues').where({ id }).andWhere('last_used_ts', '<', hourTs).update({ last_used_ts: hourTs });
  }

  async deleteQueue(id: number): Promise<void> {
    await this.db('mailbox_queues').where({ id }).delete();
  }

  /** Blocks not yet expired in `queueId`. */
  async countLive(queueId: number, now: number, trx: Db = this.db): Promise<number> {
    const row = await trx('mailbox_messages')
      .where({ queue_id: queueId })
      .andWhere('expires_ts', '>', now)
      .count<{ n: string }[]>({ n: '*' });
    return Number(row[0]?.n ?? 0);
  }

  /** Blocks held on the whole server, expired or not (they take space until purged). */
  async totalBlocks(trx: Db = this.db): Promise<number> {
    const row = await trx('mailbox_messages').count<{ n: string }[]>({ n: '*' });
    return Number(row[0]?.n ?? 0);
  }

  async insertMessage(row: Omit<MailboxMessageRow, 'seq'>, trx: Db = this.db): Promise<void> {
    await trx('mailbox_messages').insert(row);
  }

  /** The oldest live blocks of a queue, at most `limit`. */
  async oldest(queueId: number, now: number, limit: number): Promise<MailboxMessageRow[]> {
    return this.db<MailboxMessageRow>('mailbox_messages')
      .where({ queue_id: queueId })
      .andWhere('expires_ts', '>', now)
      .orderBy('seq', 'asc')
      .limit(limit);
  }

  async deleteMessage(queueId: number, msgId: string): Promise<boolean> {
    return (await this.db('mailbox_messages').where({ queue_id: queueId, msg_id: msgId }).delete()) > 0;
  }

  /** Deletes expired blocks, at most `batch`; returns how many went. */
  async purgeExpired(now: number, batch: number): Promise<number> {
    return this.db('mailbox_messages')
      .whereIn('seq', this.db('mailbox_messages').select('seq').where('expires_ts', '<=', now).limit(batch))
      .delete();
  }

  /** Deletes queues last used before `cutoff` (and their blocks), at most `batch`; returns how many. */
  async purgeIdleQueues(cutoff: number, batch: number): Promise<number> {
    return this.db('mailbox_queues')
      .whereIn('id', this.db('mailbox_queues').select('id').where('last_used_ts', '<', cutoff).limit(batch))
      .delete();
  }

  async usage(now: number, quota: number): Promise<MailboxUsage> {
    const [q, m, per] = await Promise.all([
      this.db('mailbox_queues').count<{ n: string }[]>({ n: '*' }),
      this.db('mailbox_messages')
        .select(
          this.db.raw('count(*) as n'),
          this.db.raw('coalesce(sum(octet_length(block)), 0) as bytes'),
          this.db.raw('count(*) filter (where expires_ts <= ?) as expired', [now]),
        )
        .first<{ n: string; bytes: string; expired: string }>(),
      this.db
        .from(this.db('mailbox_messages').select('queue_id').count({ c: '*' }).where('expires_ts', '>', now).groupBy('queue_id').as('p'))
        .select(this.db.raw('coalesce(max(c), 0) as fullest'), this.db.raw('count(*) filter (where c >= ?) as full', [quota]))
        .first<{ fullest: string; full: string }>(),
    ]);
    return {
      queues: Number(q[0]?.n ?? 0),
      blobs: Number(m?.n ?? 0),
      bytes: Number(m?.bytes ?? 0),
      expired_blobs: Number(m?.expired ?? 0),
      full_queues: Number(per?.full ?? 0),
      fullest_queue_blobs: Number(per?.fullest ?? 0),
    };
  }
}
