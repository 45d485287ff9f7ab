import { checkQueueRequest, MAILBOX_AUTH_WINDOW_MS, newMessageId, newQueueIds, padBlock, unpadBlock } from '@parley/federation/mailbox';
import { MAILBOX_LENGTH_PREFIX_BYTES } from '@parley/schemas';
import type { Redis } from 'ioredis';
import type { Config } from '../config.js';
import type { Db } from '../db/database.js';
import { ParleyError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { MailboxRepository } from '../repositories/mailbox.js';
import type { Clock } from './clock.js';
import { enforce, type RateLimiter } from './rate-limit.js';

/**
 * Mailbox queues (docs/protocol.md): anyone holding a send ID deposits a blob; only requests
 * signed by the queue key read, acknowledge or delete. No account is involved anywhere,
 * and nothing logged here names a queue's owner.
 */

// A sender filling one queue as fast as the per-IP limit allows is still held per queue.
const SEND_PER_QUEUE = { burst: 64, per_minute: 60 };
// Blocks answered per receive; the receiver acknowledges them and asks again.
const RECEIVE_BATCH = 16;
const PURGE_INTERVAL_MS = 60_000;
const PURGE_BATCH = 1000;
// In-memory replay memory (without Redis) is capped; past the cap the oldest go first.
const MAX_REMEMBERED_SIGNATURES = 100_000;

export type MailboxSettings = Config['mailbox'];

export interface SignedQueueRequest {
  method: string;
  path: string;
  authorization: string | undefined;
  body: Uint8Array;
}

export class MailboxService {
  private timer: NodeJS.Timeout | null = null;
  private readonly seen = new Map<string, number>();

  constructor(
    private readonly db: Db,
    private readonly repo: MailboxRepository,
    private readonly settings: MailboxSettings,
    private readonly clock: Clock,
    private readonly limiter: RateLimiter | null,
    private readonly redis: Redis | null,
    private readonly log: Logger,
  ) {}

  get enabled(): boolean {
    return this.settings.enabled;
  }

  /** What the server publishes: block size, largest blob, quota per queue, retention. */
  limits(): { block_bytes: number; max_blob_bytes: number; queue_quota: number; ttl_ms: number } {
    const s = this.settings;
    return {
      block_bytes: s.block_bytes,
      max_blob_bytes: s.block_bytes - MAILBOX_LENGTH_PREFIX_BYTES,
      queue_quota: s.queue_quota,
      ttl_ms: s.ttl_ms,
    };
  }

  private requireEnabled(): void {
    if (!this.settings.enabled) throw new ParleyError(404, 'PARLEY_NOT_FOUND', 'this server offers no mailbox (mailbox.enabled is off)');
  }

  async createQueue(queueKey: string, ip: string): Promise<{ receive_id: string; send_id: string }> {
    this.requireEnabled();
    await enforce(this.limiter, `mailbox-create:${ip}`, this.settings.create_per_ip);
    const { receiveId, sendId } = newQueueIds();
    await this.repo.insertQueue({ receive_id: receiveId, send_id: sendId, queue_key: queueKey, created_ts: this.clock.now() });
    return { receive_id: receiveId, send_id: sendId };
  }

  async send(sendId: string, blob: Uint8Array, ip: string): Promise<{ msg_id: string }> {
    this.requireEnabled();
    const s = this.settings;
    if (blob.length > s.block_bytes - MAILBOX_LENGTH_PREFIX_BYTES) throw tooLarge(s.block_bytes);
    await enforce(this.limiter, `mailbox-send:${ip}`, s.send_per_ip);
    const now = this.clock.now();
    const msgId = newMessageId();
    await this.db.transaction(async (trx) => {
      const queue = await this.repo.bySendIdForUpdate(sendId, trx);
      if (!queue) throw new ParleyError(404, 'PARLEY_NOT_FOUND', 'no queue has this send ID');
      await enforce(this.limiter, `mailbox-send-queue:${queue.id}`, SEND_PER_QUEUE);
      if ((await this.repo.countLive(queue.id, now, trx)) >= s.queue_quota) {
        throw new ParleyError(
          429,
          'PARLEY_QUOTA_EXCEEDED',
          `the queue holds ${s.queue_quota} blobs (mailbox.queue_quota): the receiver must acknowledge some first`,
        );
      }
      if (((await this.repo.totalBlocks(trx)) + 1) * s.block_bytes > s.server_quota_bytes) {
        throw new ParleyError(429, 'PARLEY_QUOTA_EXCEEDED', 'the mailbox server is full (mailbox.server_quota_bytes): try again later');
      }
      await this.repo.insertMessage(
        {
          queue_id: queue.id,
          msg_id: msgId,
          block: Buffer.from(padBlock(blob, s.block_bytes)),
          created_ts: now,
          expires_ts: now + s.ttl_ms,
        },
        trx,
      );
    });
    return { msg_id: msgId };
  }

  async receive(
    receiveId: string,
    req: SignedQueueRequest,
  ): Promise<{ messages: { msg_id: string; ts: number; body: string }[]; more: boolean }> {
    const queue = await this.authenticate(receiveId, req);
    const rows = await this.repo.oldest(queue.id, this.clock.now(), RECEIVE_BATCH + 1);
    const messages = rows.slice(0, RECEIVE_BATCH).map((row) => {
      // Our own blocks: a bad prefix would mean a corrupt row, served empty rather than thrown.
      const blob = unpadBlock(new Uint8Array(row.block)) ?? new Uint8Array(0);
      return { msg_id: row.msg_id, ts: row.created_ts, body: Buffer.from(blob).toString('base64url') };
    });
    return { messages, more: rows.length > RECEIVE_BATCH };
  }

  async ack(receiveId: string, msgId: string, req: SignedQueueRequest): Promise<void> {
    const queue = await this.authenticate(receiveId, req);
    if (!(await this.repo.deleteMessage(queue.id, msgId))) {
      throw new ParleyError(404, 'PARLEY_NOT_FOUND', 'no such message in this queue (already acknowledged, or expired)');
    }
  }

  async deleteQueue(receiveId: string, req: SignedQueueRequest): Promise<void> {
    const queue = await this.authenticate(receiveId, req);
    await this.repo.deleteQueue(queue.id);
  }

  /** Drops blocks past their TTL; returns how many went. */
  async purgeExpired(): Promise<number> {
    let total = 0;
    for (;;) {
      const n = await this.repo.purgeExpired(this.clock.now(), PURGE_BATCH);
      total += n;
      if (n < PURGE_BATCH) return total;
    }
  }

  start(): void {
    if (!this.settings.enabled || this.timer) return;
    this.timer = setInterval(() => {
      this.purgeExpired().catch((err) => this.log.warn({ err: (err as Error).message }, 'mailbox purge failed'));
    }, PURGE_INTERVAL_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  private async authenticate(receiveId: string, req: SignedQueueRequest) {
    this.requireEnabled();
    const queue = await this.repo.byReceiveId(receiveId);
    if (!queue) throw new ParleyError(404, 'PARLEY_NOT_FOUND', 'no queue has this receive ID');
    const now = this.clock.now();
    const check = checkQueueRequest(req, queue.queue_key, now);
    if (!check.ok) {
      if (check.reason === 'malformed') {
        throw new ParleyError(401, 'PARLEY_FED_BAD_AUTH', 'Authorization must be "ParleyQueue ts=<ms>,nonce=<base64url>,sig=<base64url>"');
      }
      if (check.reason === 'stale') {
        throw new ParleyError(
          401,
          'PARLEY_FED_STALE_REQUEST',
          `the request's ts is more than ${MAILBOX_AUTH_WINDOW_MS / 1000} s from the server's clock`,
        );
      }
      throw new ParleyError(401, 'PARLEY_FED_BAD_SIGNATURE', 'the signature does not verify under the queue key');
    }
    if (!(await this.firstUse(check.sig, now))) {
      throw new ParleyError(401, 'PARLEY_FED_STALE_REQUEST', 'this signed request was already used (replay): sign each request afresh');
    }
    return queue;
  }

  /** Remembers a signature for the auth window; false when it was seen already (a replay). */
  private async firstUse(sig: string, now: number): Promise<boolean> {
    const ttl = 2 * MAILBOX_AUTH_WINDOW_MS;
    if (this.redis) return (await this.redis.set(`mailbox-sig:${sig}`, '1', 'PX', ttl, 'NX')) === 'OK';
    for (const [key, expires] of this.seen) {
      if (expires > now && this.seen.size <= MAX_REMEMBERED_SIGNATURES) break;
      this.seen.delete(key);
    }
    if ((this.seen.get(sig) ?? 0) > now) return false;
    this.seen.set(sig, now + ttl);
    return true;
  }
}

export function tooLarge(blockBytes: number): ParleyError {
  return new ParleyError(
    413,
    'PARLEY_TOO_LARGE',
    `a blob may be at most ${blockBytes - MAILBOX_LENGTH_PREFIX_BYTES} bytes (mailbox.block_bytes ${blockBytes} less the length prefix)`,
  );
}
