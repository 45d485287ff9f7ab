import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { Db } from './db/database.js';
import type { MailboxService } from './services/mailbox.js';
import type { MediaService } from './services/media.js';

/** One registry per server instance, so several servers can share a process (tests). */
export class Metrics {
  readonly registry = new Registry();
  readonly httpRequests: Counter<'method' | 'route' | 'status'>;
  readonly httpDuration: Histogram<'method' | 'route'>;
  /** Sends over the stream socket (no HTTP request, so not in the two above), by answer status. */
  readonly streamSends: Counter<'status'>;
  readonly streamSendDuration: Histogram;

  constructor(db: Db, media?: MediaService, mailbox?: MailboxService) {
    collectDefaultMetrics({ register: this.registry, prefix: 'parley_' });
    this.httpRequests = new Counter({
      name: 'parley_http_requests_total',
      help: 'HTTP requests by route template and status',
      labelNames: ['method', 'route', 'status'],
      registers: [this.registry],
    });
    this.httpDuration = new Histogram({
      name: 'parley_http_request_duration_seconds',
      help: 'HTTP request latency by route template',
      labelNames: ['method', 'route'],
      buckets: [0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [this.registry],
    });
    this.streamSends = new Counter({
      name: 'parley_stream_sends_total',
      help: 'Messages sent over the stream socket (op send), by the status of the answer (as the HTTP send would answer)',
      labelNames: ['status'],
      registers: [this.registry],
    });
    this.streamSendDuration = new Histogram({
      name: 'parley_stream_send_duration_seconds',
      help: 'Time from a stream send being handed over to its answer',
      buckets: [0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [this.registry],
    });
    const pool = () => (db.client as { pool?: { numUsed(): number; numFree(): number; numPendingAcquires(): number } }).pool;
    new Gauge({
      name: 'parley_db_pool_connections',
      help: 'Database pool connections by state',
      labelNames: ['state'],
      registers: [this.registry],
      collect() {
        const p = pool();
        this.set({ state: 'used' }, p?.numUsed() ?? 0);
        this.set({ state: 'free' }, p?.numFree() ?? 0);
        this.set({ state: 'pending' }, p?.numPendingAcquires() ?? 0);
      },
    });
    if (media) this.watchRemoteMedia(media);
    this.watchMailbox(db, mailbox);
  }

  // Mailbox usage (docs/protocol.md): counts and sizes only, never a queue ID.
  private watchMailbox(db: Db, mailbox?: MailboxService): void {
    new Gauge({
      name: 'parley_mailbox_usage',
      help: 'Mailbox queues, the padded blocks they hold (expired ones until purged) and their bytes',
      labelNames: ['kind'],
      registers: [this.registry],
      async collect() {
        const [queues, blocks] = await Promise.all([
          db('mailbox_queues').count<{ n: string }[]>({ n: '*' }),
          db('mailbox_messages').select(db.raw('count(*) as n'), db.raw('coalesce(sum(octet_length(block)), 0) as bytes')),
        ]);
        this.set({ kind: 'queues' }, Number(queues[0]?.n ?? 0));
        this.set({ kind: 'blocks' }, Number(blocks[0]?.n ?? 0));
        this.set({ kind: 'bytes' }, Number(blocks[0]?.bytes ?? 0));
      },
    });
    if (!mailbox) return;
    const refusals = mailbox.refusals;
    new Counter({
      name: 'parley_mailbox_refusals_total',
      help: 'Mailbox requests refused, by reason (queue_quota, server_quota, bad_size, auth, rate_limited)',
      labelNames: ['reason'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const [reason, n] of Object.entries(refusals)) this.inc({ reason }, n);
      },
    });
  }

  // The remote media cache is capped and evicted (issue 10, M5): its size and churn are shown.
  private watchRemoteMedia(media: MediaService): void {
    const stats = media.remoteStats;
    new Gauge({
      name: 'parley_media_remote_cache_bytes',
      help: "Bytes of other servers' media cached here",
      registers: [this.registry],
      async collect() {
        this.set(await media.remoteCacheBytes());
      },
    });
    new Counter({
      name: 'parley_media_remote_fetches_total',
      help: "Fetches of other servers' media by result",
      labelNames: ['result'],
      registers: [this.registry],
      collect() {
        this.reset();
        this.inc({ result: 'ok' }, stats.fetched);
        this.inc({ result: 'failed' }, stats.failed);
      },
    });
    new Counter({
      name: 'parley_media_remote_evictions_total',
      help: 'Cached remote media files evicted to stay under media.remote_cache_max_bytes',
      registers: [this.registry],
      collect() {
        this.reset();
        this.inc(stats.evicted);
      },
    });
  }
}
