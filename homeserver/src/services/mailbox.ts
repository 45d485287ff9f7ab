import { checkQueueRequest, MAILBOX_AUTH_WINDOW_MS, newMessageId, newQueueIds } from '@parley/federation/mailbox';
import { type AdminMailboxView, MAILBOX_LENGTH_PREFIX_BYTES } from '@parley/schemas';
import type { Redis } from 'ioredis';
import type { Config } from '../config.js';
import type { Db } from '../db/database.js';
import { ParleyError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { MailboxRepository, MailboxUsage } from '../repositories/mailbox.js';
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
// One purge run deletes at most this many blocks and this many queues; the rest wait a minute.
export const PURGE_BATCH = 1000;
// A queue's last use is kept to the hour (less to learn from the table, one write an hour).
export const LAST_USED_GRANULARITY_MS = 3_600_000;
// In-memory replay memory (without Redis) is capped; past the cap the oldest go first.
const MAX_REMEMBERED_SIGNATURES = 100_000;

export type MailboxSettings = Config['mailbox'];

/** Requests refused since the process started, by reason (for /metrics and the admin view). */
export interface MailboxRefusals {
  queue_quota: number;
  server_quota: number;
  bad_size: number;
  auth: number;
  rate_limited: number;
}

export interface SignedQueueRequest {
  method: string;
  path: string;
  authorization: string | undefined;
  body: Uint8Array;
}

export class MailboxService {
  private timer: NodeJS.Timeout | null = null;
  private readonly seen = new Map<string, number>();
  readonly refusals: MailboxRefusals = { queue_quota: 0, server_quota: 0, bad_size: 0, auth: 0, rate_limited: 0 };
  private lastPurge: { ts: number; blobs: number; queues: number } | null = null;

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
    await this.limited(enforce(this.limiter, `mailbox-create:${ip}`, this.settings.create_per_ip));
    const { receiveId, sendId } = newQueueIds();
    const now = this.clock.now();
    await this.repo.insertQueue({
      receive_id: receiveId,
      send_id: sendId,
      queue_key: queueKey,
      created_ts: now,
      last_used_ts: hourOf(now),
    });
    return { receive_id: receiveId, send_id: sendId };
  }

  /**
   * Stores one block. The sender pads (docs/protocol.md): the body is exactly `block_bytes`
   * bytes and is kept as it came, so the server never learns how long the message inside was.
   */
  async send(sendId: string, block: Uint8Array, ip: string): Promise<{ msg_id: string }> {
    this.requireEnabled();
    const s = this.settings;
    if (block.length > s.block_bytes) {
      this.refusals.bad_size++;
      throw tooLarge(s.block_bytes);
    }
    if (block.length !== s.block_bytes) {
      this.refusals.bad_size++;
      throw wrongSize(s.block_bytes, block.length);
    }
    await this.limited(enforce(this.limiter, `mailbox-send:${ip}`, s.send_per_ip));
    const now = this.clock.now();
    const msgId = newMessageId();
    await this.db.transaction(async (trx) => {
      const queue = await this.repo.lockForSend(sendId, trx);
      if (!queue) throw new ParleyError(404, 'PARLEY_NOT_FOUND', 'no queue has this send ID');
      await this.limited(enforce(this.limiter, `mailbox-send-queue:${queue.id}`, SEND_PER_QUEUE));
      if ((await this.repo.countLive(queue.id, now, trx)) >= s.queue_quota) {
        this.refusals.queue_quota++;
        throw new ParleyError(
          429,
          'PARLEY_QUOTA_EXCEEDED',
          `the queue holds ${s.queue_quota} blobs (mailbox.queue_quota): the receiver must acknowledge some first`,
        );
      }
      if (((await this.repo.totalBlocks(trx)) + 1) * s.block_bytes > s.server_quota_bytes) {
        this.refusals.server_quota++;
        throw new ParleyError(429, 'PARLEY_QUOTA_EXCEEDED', 'the mailbox server is full (mailbox.server_quota_bytes): try again later');
      }
      await this.repo.insertMessage(
        { queue_id: queue.id, msg_id: msgId, block: Buffer.from(block), created_ts: now, expires_ts: now + s.ttl_ms },
        trx,
      );
      await this.repo.touch(queue.id, hourOf(now), trx);
    });
    return { msg_id: msgId };
  }

  async receive(
    receiveId: string,
    req: SignedQueueRequest,
  ): Promise<{ messages: { msg_id: string; ts: number; body: string }[]; more: boolean }> {
    const queue = await this.authenticate(receiveId, req);
    const now = this.clock.now();
    await this.repo.touch(queue.id, hourOf(now));
    const rows = await this.repo.oldest(queue.id, now, RECEIVE_BATCH + 1);
    // The blocks as they were sent: unpadding is the receiver's (it refuses a bad prefix).
    const messages = rows
      .slice(0, RECEIVE_BATCH)
      .map((row) => ({ msg_id: row.msg_id, ts: row.created_ts, body: Buffer.from(row.block).toString('base64url') }));
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

  /**
   * One cleanup run: drops blocks past their TTL and queues neither sent to nor read for the
   * retention period (with whatever they hold), at most PURGE_BATCH of each, so a run stays
   * short however much is due; the rest goes on the next run.
   */
  async purge(): Promise<{ blobs: number; queues: number }> {
    const now = this.clock.now();
    const blobs = await this.repo.purgeExpired(now, PURGE_BATCH);
    // last_used_ts is rounded down to the hour: a queue is idle once even the end of that hour is past the TTL.
    const queues = await this.repo.purgeIdleQueues(now - this.settings.ttl_ms - LAST_USED_GRANULARITY_MS, PURGE_BATCH);
    this.lastPurge = { ts: now, blobs, queues };
    return { blobs, queues };
  }

  /** Counts and sizes only: nothing here names a queue, let alone a user. */
  async adminView(): Promise<AdminMailboxView> {
    const s = this.settings;
    const usage: MailboxUsage = await this.repo.usage(this.clock.now(), s.queue_quota);
    return {
      enabled: s.enabled,
      limits: {
        ...this.limits(),
        server_quota_bytes: s.server_quota_bytes,
        idle_queue_ttl_ms: s.ttl_ms,
        create_per_ip: s.create_per_ip,
        send_per_ip: s.send_per_ip,
      },
      usage: { ...usage, server_quota_used: usage.bytes / s.server_quota_bytes },
      refusals: { ...this.refusals },
      last_purge: this.lastPurge,
    };
  }

  start(): void {
    if (!this.settings.enabled || this.timer) return;
    this.timer = setInterval(() => {
      this.purge().catch((err) => this.log.warn({ err: (err as Error).message }, 'mailbox purge failed'));
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
      this.refusals.auth++;
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
      this.refusals.auth++;
      throw new ParleyError(401, 'PARLEY_FED_STALE_REQUEST', 'this signed request was already used (replay): sign each request afresh');
    }
    return queue;
  }

  /** Counts a rate-limit refusal on its way out. */
  private async limited(check: Promise<void>): Promise<void> {
    try {
      await check;
    } catch (err) {
      if ((err as ParleyError).status === 429) this.refusals.rate_limited++;
      throw err;
    }
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

export function wrongSize(blockBytes: number, got: number): ParleyError {
  return new ParleyError(
    400,
    'PARLEY_INVALID_PARAM',
    `the body must be one padded block of exactly ${blockBytes} bytes (mailbox.block_bytes), not ${got}: a 4-byte big-endian length, the blob, zeros`,
    { field: 'body' },
  );
}

function hourOf(ts: number): number {
  return ts - (ts % LAST_USED_GRANULARITY_MS);
}
