import { type DestinationState, mayTry, onFailure, onInbound, onSuccess } from '@parley/federation/delivery';
import type { Queue, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { Logger } from '../logger.js';
import { type OutboxRepository, type OutboxRow, stateOf } from '../repositories/outbox.js';
import type { Clock } from '../services/clock.js';

export interface OutgoingTransaction {
  txnId: string;
  events: unknown[];
  edus: unknown[];
}

/** Sends one transaction to a destination; throws when it was not accepted. */
export type Sender = (destination: string, txn: OutgoingTransaction) => Promise<void>;

/**
 * Hands queued submits (events of one room `destination` hosts, signed by us while the host
 * was unreachable) to the host, in order. Answers per event null when sequenced, the reason
 * when the host refused it for good (a 4xx); throws when the host could not be reached.
 */
export type Submitter = (destination: string, payloads: Array<Record<string, unknown>>) => Promise<Array<string | null>>;

const roomOf = (row: OutboxRow) => String((row.payload.event as { room_id?: unknown } | undefined)?.room_id ?? '');

export type DrainOutcome = { kind: 'done' } | { kind: 'again'; delayMs: number };

/**
 * Store-and-forward through a relay (docs/protocol.md): once a destination has failed directly
 * for `fallbackAfterMs`, each transaction is also offered to a relay. Rows stay pending until
 * the destination itself acknowledges them: its own 200 on a direct send, or its signed receipt
 * brought back by the relay ('delivered'). 'held' means a relay took it and nothing more: the
 * same transaction (same txn ID, same rows) is offered again every `pollMs` and sent directly
 * on the direct schedule, capped at `directRetryMaxMs` so a healed path is noticed soon.
 */
export interface RelayFallback {
  fallbackAfterMs: number;
  directRetryMaxMs: number;
  pollMs: number;
  /** Throws when no relay took it. */
  offer(destination: string, txn: OutgoingTransaction): Promise<'delivered' | 'held'>;
}

interface PinnedBatch {
  txnId: string;
  events: OutboxRow[];
  edus: OutboxRow[];
}

export interface DeliverySettings {
  ttlMs: number;
  concurrency: number;
  sweepMs: number;
  keyPrefix: string;
}

const MAX_EVENTS = 100;
const MAX_EDUS = 100;
// Ephemeral items ride along with events; a batch of large to-device messages must not push a
// transaction past the receiver's body cap (8 MiB by default), or the events would fail with it.
const MAX_EDU_BYTES = 1024 * 1024;
// Queued submits one drain hands over (one request each, in order).
const MAX_SUBMITS = 50;
// Batches one drain may send before it yields its worker to other destinations.
const BATCHES_PER_DRAIN = 10;
/** How stale a destination's last_success_ts may get while it stays up (the admin view shows it). */
const UP_REWRITE_MS = 5_000;
/** How long a destination read as up answers an inbound request's "retry now?" without a read. */
const INBOUND_UP_TTL_MS = 1_000;
// How long after a direct delivery a destination's row is not read again before the next one.
const UP_READ_MS = 1_000;
const QUEUE = 'federation-delivery';

/**
 * Durable delivery (docs/protocol.md). Rows are written to the outbox in the transaction that
 * persists what they carry; this engine drains each destination in order, at most 100 events
 * and 100 ephemeral items per transaction, destinations concurrently. With Redis, BullMQ runs
 * one deduplicated "drain X" job per destination; without, an in-process scheduler does the
 * same. A periodic sweep re-creates schedules from the outbox, so losing Redis loses nothing.
 */
export class DeliveryEngine {
  private queue: Queue | null = null;
  private worker: Worker | null = null;
  private sweepTimer: NodeJS.Timeout | null = null;
  private readonly connections: Redis[] = [];
  private readonly local = new Map<string, NodeJS.Timeout | 'running' | 'rerun'>();
  private running = 0;
  private readonly waiting: string[] = [];
  private stopped = false;
  private readonly failures: Counter<'destination'>;
  private readonly latency: Histogram;
  private readonly expiredCounter: Counter<'destination'>;
  private readonly refusedCounter: Counter<'destination'>;
  /** Set when queued submits (events for rooms other servers host) are to be delivered. */
  submitter: Submitter | null = null;
  /** Set when transactions may go through a relay while a destination cannot be reached. */
  relay: RelayFallback | null = null;
  /** Per destination, the batch offered to a relay: sent again as is (same txn ID) until acknowledged. */
  private readonly pinned = new Map<string, PinnedBatch>();
  /** Destinations a relay has carried traffic for since they went down (direct retries stay frequent). */
  private readonly carried = new Set<string>();
  /**
   * When this process last wrote a success for a destination (state up, last_success_ts). A
   * destination that stays up is written again only every UP_REWRITE_MS, not after every batch
   * (it was one upsert per delivered transaction); a failure here forgets the entry.
   */
  private readonly upWritten = new Map<string, number>();
  /** When this process last delivered to each destination directly (skips reading its state for UP_READ_MS). */
  private readonly upSeenDelivering = new Map<string, number>();
  /** When this process last read a destination as up, so inbound requests do not read it each time. */
  private readonly upSeen = new Map<string, number>();
  private readonly relayedCounter: Counter<'outcome'>;

  constructor(
    private readonly repo: OutboxRepository,
    private readonly sender: Sender,
    private readonly clock: Clock,
    private readonly random: () => number,
    private readonly redis: Redis | null,
    private readonly settings: DeliverySettings,
    private readonly log: Logger,
    registry: Registry,
  ) {
    this.failures = new Counter({
      name: 'parley_federation_delivery_failures_total',
      help: 'Failed transactions by destination',
      labelNames: ['destination'],
      registers: [registry],
    });
    this.expiredCounter = new Counter({
      name: 'parley_federation_outbox_expired_total',
      help: 'Outbox rows dropped after their TTL, by destination',
      labelNames: ['destination'],
      registers: [registry],
    });
    this.refusedCounter = new Counter({
      name: 'parley_federation_submit_refused_total',
      help: 'Queued submits the room host refused (auth rules, bad event), by destination',
      labelNames: ['destination'],
      registers: [registry],
    });
    this.relayedCounter = new Counter({
      name: 'parley_federation_relay_offers_total',
      help: 'Transactions offered to a relay while the destination failed directly, by outcome (delivered, held, failed)',
      labelNames: ['outcome'],
      registers: [registry],
    });
    this.latency = new Histogram({
      name: 'parley_federation_delivery_latency_seconds',
      help: 'Time from outbox write to acknowledged delivery',
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 5, 30, 300, 3600, 86400],
      registers: [registry],
    });
    const repoRef = repo;
    new Gauge({
      name: 'parley_federation_queue_depth',
      help: 'Undelivered outbox rows by destination',
      labelNames: ['destination'],
      registers: [registry],
      async collect() {
        this.reset();
        for (const { destination, n } of await repoRef.depth()) this.set({ destination }, n);
      },
    });
    new Gauge({
      name: 'parley_federation_destination_up',
      help: '1 when the destination is up, 0 while backing off or down',
      labelNames: ['destination', 'state'],
      registers: [registry],
      async collect() {
        this.reset();
        for (const d of await repoRef.destinations()) this.set({ destination: d.name, state: d.state }, d.state === 'up' ? 1 : 0);
      },
    });
  }

  async start(): Promise<void> {
    if (this.redis) {
      // BullMQ needs its own connections with no per-command retry limit.
      const connection = this.redis.duplicate({ maxRetriesPerRequest: null, keyPrefix: '' });
      const workerConnection = this.redis.duplicate({ maxRetriesPerRequest: null, keyPrefix: '' });
      this.connections.push(connection, workerConnection);
      // One hash tag for all of BullMQ's keys, so its multi-key scripts run on Redis Cluster.
      const prefix = `{${this.settings.keyPrefix}bull}`;
      // BullMQ loads only with Redis (its own chunk in the bundle): the poller needs none of it.
      const { Queue, Worker } = await import('bullmq');
      this.queue = new Queue(QUEUE, { connection, prefix });
      this.worker = new Worker(QUEUE, async (job) => this.drain(job.data.destination as string), {
        connection: workerConnection,
        prefix,
        concurrency: this.settings.concurrency,
        // A drain whose process died (kill -9) holds its destination's job until the lock
        // expires and the stalled check hands it back: keep that short (the lock is renewed
        // every lockDuration/2 while a drain runs).
        lockDuration: 10_000,
        stalledInterval: 5_000,
        maxStalledCount: 1_000_000,
      });
      // A job cannot re-add itself while it is active (same job ID): follow-ups go here.
      this.worker.on('completed', (job, next: DrainOutcome) => {
        const destination = job.data.destination as string;
        if (next.kind === 'again') {
          void this.schedule(destination, next.delayMs);
          return;
        }
        // Rows written while this drain ran were announced to a job that already existed (a
        // no-op): look once more now that it is gone, instead of leaving them to the sweep.
        this.repo
          .hasPendingAny(destination)
          .then((pending) => (pending ? this.schedule(destination, 0) : undefined))
          .catch((err) => this.log.warn({ err: (err as Error).message, destination }, 'delivery recheck failed'));
      });
      this.worker.on('error', (err) => this.log.warn({ err: err.message }, 'delivery worker error'));
      this.queue.on('error', (err) => this.log.warn({ err: err.message }, 'delivery queue error'));
    }
    this.sweepTimer = setInterval(() => void this.sweep(), this.settings.sweepMs);
    this.sweepTimer.unref();
    await this.sweep();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    for (const v of this.local.values()) if (typeof v !== 'string') clearTimeout(v);
    await this.worker?.close();
    await this.queue?.close();
    // BullMQ does not close connections it was given: without this the process never exits.
    for (const c of this.connections.splice(0)) c.disconnect();
  }

  /** After the transaction that wrote outbox rows for these destinations committed. */
  notify(destinations: Iterable<string>): void {
    for (const d of destinations) void this.schedule(d, 0);
  }

  /** A request arrived from `origin`: if we were backing off from it, retry now. */
  async inbound(origin: string): Promise<void> {
    const now = this.clock.now();
    if (now - (this.upSeen.get(origin) ?? Number.NEGATIVE_INFINITY) < INBOUND_UP_TTL_MS) return;
    const row = await this.repo.destination(origin);
    if (!row || row.state === 'up') {
      this.upSeen.set(origin, now);
      return;
    }
    this.upSeen.delete(origin);
    await this.repo.saveState(origin, onInbound(stateOf(row), this.clock.now()), {});
    await this.schedule(origin, 0);
  }

  /** Re-creates schedules from the outbox (the truth) and reports what outlived its TTL. */
  async sweep(): Promise<void> {
    if (this.stopped) return;
    try {
      for (const { destination, n, coalesced } of await this.repo.expire(this.clock.now())) {
        // Typing and presence are meant to lapse while a destination is away: not an error.
        if (coalesced) {
          this.log.debug({ destination, expired: n }, 'ephemeral outbox rows lapsed undelivered');
          continue;
        }
        this.expiredCounter.inc({ destination }, n);
        this.log.error({ destination, expired: n }, 'outbox rows expired undelivered (TTL reached)');
      }
      for (const destination of await this.repo.due(this.clock.now())) await this.schedule(destination, 0);
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'delivery sweep failed');
    }
  }

  private async schedule(destination: string, delayMs: number): Promise<void> {
    if (this.stopped) return;
    if (this.queue) {
      try {
        // A retry waiting for its backoff is promoted when the destination is due now. A
        // destination this process delivered to a moment ago has no such retry: two Redis
        // round trips saved on every send to a busy destination.
        const recentlyUp = this.clock.now() - (this.upWritten.get(destination) ?? Number.NEGATIVE_INFINITY) < UP_REWRITE_MS;
        if (delayMs === 0 && !recentlyUp) {
          const existing = await this.queue.getJob(`drain-${destination}`);
          if (existing && (await existing.isDelayed())) {
            await existing.promote();
            return;
          }
        }
        // One job per destination: adding while one waits, is delayed or runs is a no-op.
        await this.queue.add(
          'drain',
          { destination },
          { jobId: `drain-${destination}`, delay: Math.max(0, delayMs), removeOnComplete: true, removeOnFail: true },
        );
      } catch (err) {
        this.log.warn({ err: (err as Error).message, destination }, 'could not schedule delivery; the sweep will');
      }
      return;
    }
    const current = this.local.get(destination);
    if (current === 'running' || current === 'rerun') {
      this.local.set(destination, 'rerun');
      return;
    }
    if (current) clearTimeout(current);
    const timer = setTimeout(() => this.runLocal(destination), Math.max(0, delayMs));
    timer.unref();
    this.local.set(destination, timer);
  }

  private runLocal(destination: string): void {
    if (this.running >= this.settings.concurrency) {
      this.local.set(destination, 'running');
      this.waiting.push(destination);
      return;
    }
    this.running++;
    this.local.set(destination, 'running');
    let outcome: DrainOutcome = { kind: 'done' };
    void this.drain(destination)
      .then((o) => {
        outcome = o;
      })
      .catch((err) => this.log.error({ err, destination }, 'delivery drain failed'))
      .finally(() => {
        this.running--;
        const rerun = this.local.get(destination) === 'rerun';
        this.local.delete(destination);
        if (outcome.kind === 'again') void this.schedule(destination, outcome.delayMs);
        else if (rerun) void this.schedule(destination, 0);
        const next = this.waiting.shift();
        if (next) {
          this.local.delete(next);
          this.runLocal(next);
        }
      });
  }

  /** Sends what is pending for one destination, in order, until empty or failing. */
  async drain(destination: string): Promise<DrainOutcome> {
    for (let batch = 0; batch < BATCHES_PER_DRAIN; batch++) {
      if (this.stopped) return { kind: 'done' };
      const now = this.clock.now();
      // A destination this process delivered to directly within the last second is taken as up
      // without reading its row: a busy destination gets a transaction every few milliseconds.
      // Had another process just marked it down, this try fails and records the failure anyway.
      const seenUp = now - (this.upSeenDelivering.get(destination) ?? Number.NEGATIVE_INFINITY) < UP_READ_MS;
      const state = seenUp ? onSuccess() : stateOf(await this.repo.destination(destination));
      const direct = mayTry(state, now);
      if (!direct && !this.relaying(state, now)) {
        // Come back when the next direct try is due, or when a relay may take over if sooner.
        const due =
          state.kind === 'up' ? now : this.relay ? Math.min(state.nextTryTs, state.sinceTs + this.relay.fallbackAfterMs) : state.nextTryTs;
        return { kind: 'again', delayMs: Math.max(0, due - now) };
      }
      const pin = this.pinned.get(destination);
      const submitLimit = this.submitter && direct ? MAX_SUBMITS : 0;
      // Unpinned, the batch's three kinds are one read.
      const pending = pin
        ? {
            event: pin.events,
            edu: pin.edus,
            submit: submitLimit > 0 ? await this.repo.pending(destination, 'submit', submitLimit) : [],
          }
        : await this.repo.pendingBatch(destination, { event: MAX_EVENTS, edu: MAX_EDUS, submit: submitLimit }, now);
      const { event: events, edu: pendingEdus, submit: submits } = pending;
      const edus = pin ? pin.edus : withinBytes(pendingEdus, MAX_EDU_BYTES);
      if (events.length === 0 && edus.length === 0 && submits.length === 0) return { kind: 'done' };
      const rows: OutboxRow[] = [...events, ...edus];
      const ids = rows.map((r) => r.id);
      // The same rows always make the same txn ID, so a retried batch is deduplicated.
      const txn: OutgoingTransaction | null =
        rows.length === 0
          ? null
          : {
              txnId: pin?.txnId ?? `${Math.min(...ids)}-${Math.max(...ids)}-${rows.length}`,
              events: events.map((r) => r.payload),
              edus: edus.map((r) => r.payload),
            };
      let after = state;
      let carry = txn;
      if (direct) {
        try {
          if (txn) {
            await this.sender(destination, txn);
            await this.delivered(rows);
            this.pinned.delete(destination);
            carry = null;
          }
          await this.handOverSubmits(destination, submits);
          const at = this.clock.now();
          if (direct) this.upSeenDelivering.set(destination, at);
          if (state.kind !== 'up' || at - (this.upWritten.get(destination) ?? Number.NEGATIVE_INFINITY) >= UP_REWRITE_MS) {
            await this.repo.saveState(destination, onSuccess(), { lastSuccessTs: at, lastError: null });
            this.upWritten.set(destination, at);
          }
          this.carried.delete(destination);
          if (state.kind !== 'up') this.log.info({ destination }, 'destination is up again');
          if (
            !pin &&
            events.length < MAX_EVENTS &&
            pendingEdus.length < MAX_EDUS &&
            edus.length === pendingEdus.length &&
            submits.length < MAX_SUBMITS
          )
            return { kind: 'done' };
          continue;
        } catch (err) {
          after = await this.failed(destination, state, now, err);
          if (!carry || !this.relaying(after, now)) {
            const due =
              after.kind === 'up'
                ? now
                : this.relay && carry
                  ? Math.min(after.nextTryTs, after.sinceTs + this.relay.fallbackAfterMs)
                  : after.nextTryTs;
            return { kind: 'again', delayMs: Math.max(0, due - now) };
          }
        }
      }
      const txnToRelay = carry;
      if (!txnToRelay || !this.relay) return { kind: 'again', delayMs: after.kind === 'up' ? 0 : after.nextTryTs - now };
      // Direct failed for long enough: a relay carries the same signed transaction. Once one has
      // taken it, the batch is pinned: offered and sent directly as is until acknowledged.
      const untilDirect = after.kind === 'up' ? 0 : Math.max(0, after.nextTryTs - now);
      try {
        const outcome = await this.relay.offer(destination, txnToRelay);
        this.relayedCounter.inc({ outcome });
        this.carried.add(destination);
        if (outcome === 'held') {
          this.pinned.set(destination, { txnId: txnToRelay.txnId, events, edus });
          return { kind: 'again', delayMs: Math.min(this.relay.pollMs, untilDirect) };
        }
        await this.delivered(rows);
        this.pinned.delete(destination);
        this.log.debug({ destination, txn_id: txnToRelay.txnId }, 'delivered through a relay (receipt verified)');
      } catch (err) {
        // No relay known at all: wait for the direct schedule rather than poll.
        if ((err as { noRelay?: boolean }).noRelay) return { kind: 'again', delayMs: untilDirect };
        this.relayedCounter.inc({ outcome: 'failed' });
        this.log.warn({ destination, err: (err as Error).message }, 'no relay took the transaction');
        return { kind: 'again', delayMs: Math.min(this.relay.pollMs * 2, untilDirect) };
      }
    }
    // Still more: yield the worker to other destinations and come back.
    return { kind: 'again', delayMs: 0 };
  }

  /** True when the destination has failed directly for long enough that a relay may carry its traffic. */
  private relaying(state: DestinationState, now: number): boolean {
    return this.relay !== null && state.kind !== 'up' && now - state.sinceTs >= this.relay.fallbackAfterMs;
  }

  /** Records a direct failure; while a relay carries the traffic, the next direct try comes within directRetryMaxMs. */
  private async failed(destination: string, state: DestinationState, now: number, err: unknown): Promise<DestinationState> {
    let next = onFailure(state, now, this.random);
    // Only while a relay carries the traffic: a dead destination with no relay keeps the full backoff.
    if (this.relay && this.carried.has(destination) && next.kind !== 'up')
      next = { ...next, nextTryTs: Math.min(next.nextTryTs, now + this.relay.directRetryMaxMs) };
    this.failures.inc({ destination });
    this.upWritten.delete(destination);
    this.upSeenDelivering.delete(destination);
    this.upSeen.delete(destination);
    await this.repo.saveState(destination, next, { lastError: String((err as Error).message ?? err).slice(0, 500) });
    this.log.warn(
      {
        destination,
        failures: next.kind === 'up' ? 0 : next.failures,
        retry_in_ms: next.kind === 'up' ? 0 : next.nextTryTs - now,
        err: (err as Error).message,
      },
      'delivery failed; backing off',
    );
    return next;
  }

  /** Queued submits, consecutive ones for one room in one request (the host answers per event). */
  private async handOverSubmits(destination: string, submits: OutboxRow[]): Promise<void> {
    for (let i = 0; i < submits.length; ) {
      const room = roomOf(submits[i] as OutboxRow);
      let j = i + 1;
      while (j < submits.length && roomOf(submits[j] as OutboxRow) === room) j++;
      const run = submits.slice(i, j);
      const refusals = await (this.submitter as Submitter)(
        destination,
        run.map((r) => r.payload),
      );
      await this.delivered(run);
      run.forEach((row, k) => {
        const refused = refusals[k];
        if (!refused) return;
        this.refusedCounter.inc({ destination });
        this.log.warn({ destination, outbox_id: row.id, reason: refused }, 'the room host refused a queued event');
      });
      i = j;
    }
  }

  private async delivered(rows: OutboxRow[]): Promise<void> {
    const done = this.clock.now();
    await this.repo.markDelivered(
      rows.map((r) => r.id),
      done,
    );
    for (const r of rows) this.latency.observe((done - r.created_ts) / 1000);
  }
}

/** The first rows whose payloads fit in `budget` bytes of JSON (always at least one). */
function withinBytes(rows: OutboxRow[], budget: number): OutboxRow[] {
  let used = 0;
  for (let i = 0; i < rows.length; i++) {
    used += JSON.stringify((rows[i] as OutboxRow).payload).length;
    if (used > budget && i > 0) return rows.slice(0, i);
  }
  return rows;
}
