import type { Db } from '../db/database.js';

export interface MailboxQueueRow {
  id: number;
  receive_id: string;
  send_id: string;
  queue_key: string;
  created_ts: number;
}

export interface MailboxMessageRow {
  seq: number;
  queue_id: number;
  msg_id: string;
  block: Buffer;
  created_ts: number;
  expires_ts: number;
}

/** Mailbox queues and their blocks. No column names an account (docs/protocol.md). */
export class MailboxRepository {
  constructor(private readonly db: Db) {}

  async insertQueue(row: Omit<MailboxQueueRow, 'id'>): Promise<void> {
    await this.db('mailbox_queues').insert(row);
  }

  async byReceiveId(receiveId: string): Promise<MailboxQueueRow | undefined> {
    return this.db<MailboxQueueRow>('mailbox_queues').where({ receive_id: receiveId }).first();
  }

  /** With `trx` the queue row is locked until the transaction ends, so quota checks serialise. */
  async bySendIdForUpdate(sendId: string, trx: Db): Promise<MailboxQueueRow | undefined> {
    return trx<MailboxQueueRow>('mailbox_queues').where({ send_id: sendId }).forUpdate().first();
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

  /** Deletes expired blocks, at most `batch` at a time; returns how many went. */
  async purgeExpired(now: number, batch: number): Promise<number> {
    return this.db('mailbox_messages')
      .whereIn('seq', this.db('mailbox_messages').select('seq').where('expires_ts', '<=', now).limit(batch))
      .delete();
  }
}
