import { createHash } from 'node:crypto';
import {
  decodeBody,
  envelopeBodyBytes,
  parseRequestEnvelope,
  type RelayRequestEnvelope,
  verifyRequestEnvelope,
} from '@parley/federation/relay';
import { isFederationError } from '@parley/federation/transport';
import { Gauge, type Registry } from 'prom-client';
import { ParleyError } from '../errors.js';
import type { FederationContext } from '../federation/setup.js';
import type { Logger } from '../logger.js';
import type { HeldRow, RelayHeldRepository } from '../repositories/relay-held.js';
import type { Clock } from '../services/clock.js';
import type { RateLimiter, RateRule } from '../services/rate-limit.js';

export interface StoreForwardSettings {
  /** How long a held transaction is kept (and its answer remembered for re-offers). */
  ttlMs: number;
  /** Undelivered transactions held at once for one origin. */
  perOrigin: number;
  /** Undelivered bytes held at once for one origin. */
  perOriginBytes: number;
  /** Undelivered bytes held on the whole relay. */
  maxBytes: number;
  /** Largest transaction body accepted. */
  maxBodyBytes: number;
  /** Offers per origin (burst, sustained). */
  offers: RateRule;
  /** The first delivery try happens while the origin waits, at most this long. */
  firstTryMs: number;
  /** Retry loop period, and backoff bounds for one held transaction. */
  tickMs: number;
  maxRetryMs: number;
}

export type OfferAnswer = { status: number; body: unknown };
type Attempt = { kind: 'delivered'; body: unknown } | { kind: 'held' } | { kind: 'refused'; reason: string };

const SEND_URI = /^\/federation\/v1\/send\/([^/?#]{1,255})$/;
const DUE_PER_TICK = 32;

/**
 * The relay's side of store-and-forward (docs/protocol.md): it takes a transaction an origin
 * signed for a destination the origin cannot reach, checks the origin's signature as the
 * destination will, keeps it in its database (TTL, count and byte quotas per origin, a byte cap
 * for the relay, an offer rate per origin) and delivers it, unchanged, retrying with backoff.
 * It forwards the origin's Authorization header and body bytes as they came: it cannot alter
 * them (the destination checks the signature) and, in an encrypted room, reads only ciphertext.
 * The destination's answer, with its signed receipt, is kept until the TTL so the origin, which
 * offers the same transaction again until it has that receipt, gets it.
 */
export class StoreAndForward {
  private timer: NodeJS.Timeout | null = null;
  private readonly inFlight = new Set<number>();
  private stopped = false;

  constructor(
    private readonly repo: RelayHeldRepository,
    private readonly fed: FederationContext,
    private readonly clock: Clock,
    private readonly limiter: RateLimiter,
    private readonly settings: StoreForwardSettings,
    private readonly log: Logger,
    registry?: Registry,
  ) {
    if (registry) {
      const repoRef = repo;
      new Gauge({
        name: 'parley_relay_held',
        help: 'Transactions this relay holds for other servers, undelivered (kind=transactions|bytes)',
        labelNames: ['kind'],
        registers: [registry],
        async collect() {
          const d = await repoRef.depth();
          this.set({ kind: 'transactions' }, d.held);
          this.set({ kind: 'bytes' }, d.bytes);
        },
      });
    }
  }

  start(): void {
    this.timer = setInterval(() => void this.tick(), this.settings.tickMs);
    this.timer.unref();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
  }

  /**
   * An authenticated origin offers a transaction for `destination` (the forward endpoint, when
   * the destination holds no reservation here). Answers 200 with the destination's own answer
   * once delivered, 202 `{status:"held"}` while held; refuses with a clear 4xx.
   */
  async offer(origin: string, raw: unknown, requester: string): Promise<OfferAnswer> {
    const parsed = parseRequestEnvelope(raw, this.settings.maxBodyBytes);
    if (!parsed.ok) {
      const tooLarge = parsed.reason.startsWith('body: more than');
      throw new ParleyError(
        tooLarge ? 413 : 400,
        tooLarge ? 'PARLEY_TOO_LARGE' : 'PARLEY_INVALID_PARAM',
        `relay envelope: ${parsed.reason}`,
      );
    }
    const envelope = parsed.value;
    const uri = SEND_URI.exec(envelope.uri);
    if (envelope.method !== 'PUT' || !uri)
      throw new ParleyError(400, 'PARLEY_INVALID_PARAM', 'a relay holds only transactions (PUT /federation/v1/send/<txnId>)', {
        field: 'uri',
      });
    const decision = await this.limiter.take(`relay-offer:${origin}`, this.settings.offers);
    if (!decision.allowed)
      throw new ParleyError(429, 'PARLEY_RATE_LIMITED', `${origin} offers transactions to this relay too fast`, {
        retryAfterMs: decision.retryAfterMs,
      });
    const now = this.clock.now();
    const verified = await verifyRequestEnvelope(
      envelope,
      async (server, keyId) => this.fed.keyStore.getKey(server, keyId, { requester }),
      {
        now,
        windowMs: this.fed.config.request_time_window_ms,
      },
    );
    if (!verified.ok) throw new ParleyError(401, verified.code, `the carried request: ${verified.reason}`);
    if (verified.origin !== origin)
      throw new ParleyError(403, 'PARLEY_FORBIDDEN', `the carried request is signed by ${verified.origin}, not by ${origin}`);
    if (envelope.destination === this.fed.serverName)
      throw new ParleyError(400, 'PARLEY_INVALID_PARAM', 'the transaction is for this server: send it directly', { field: 'destination' });
    const txnId = decodeURIComponent(uri[1] as string);
    const digest = createHash('sha256').update(decodeBody(envelope.body)).digest('hex');
    const bytes = envelopeBodyBytes(envelope);
    const expires = now + this.settings.ttlMs;

    let row = await this.repo.find(origin, envelope.destination, txnId);
    if (row) {
      if (row.body_sha256 !== digest)
        throw new ParleyError(409, 'PARLEY_INVALID_PARAM', `transaction ${txnId} is held here with other content`, { field: 'body' });
      if (row.delivered_ts !== null) return { status: 200, body: row.answer };
      await this.repo.refresh(row.id, envelope, expires, now);
      row = { ...row, envelope, expires_ts: expires };
    } else {
      const usage = await this.repo.usageOf(origin);
      if (usage.n >= this.settings.perOrigin || usage.bytes + bytes > this.settings.perOriginBytes)
        throw new ParleyError(
          429,
          'PARLEY_RELAY_QUOTA',
          `${origin} has ${usage.n} transactions (${usage.bytes} bytes) held here; the quota is ${this.settings.perOrigin} (${this.settings.perOriginBytes} bytes)`,
          { retryAfterMs: this.settings.tickMs * 10 },
        );
      if ((await this.repo.totalBytes()) + bytes > this.settings.maxBytes)
        throw new ParleyError(429, 'PARLEY_RELAY_QUOTA', 'this relay holds as many bytes as it allows; try another relay', {
          retryAfterMs: this.settings.tickMs * 10,
        });
      row = await this.repo.insert({
        origin,
        destination: envelope.destination,
        txn_id: txnId,
        envelope,
        body_sha256: digest,
        bytes,
        received_ts: now,
        expires_ts: expires,
        next_try_ts: now,
      });
      if (!row) return { status: 202, body: { status: 'held' } };
    }
    const outcome = await this.attempt(row, this.settings.firstTryMs);
    if (outcome.kind === 'delivered') return { status: 200, body: outcome.body };
    if (outcome.kind === 'refused')
      throw new ParleyError(400, 'PARLEY_INVALID_PARAM', `the destination refused the carried request: ${outcome.reason}`);
    return { status: 202, body: { status: 'held', expires_ts: expires } };
  }

  /** One pass of the retry loop: expiry, then due transactions (bounded per pass). */
  async tick(): Promise<void> {
    if (this.stopped) return;
    try {
      const now = this.clock.now();
      const dropped = await this.repo.expire(now);
      if (dropped > 0) this.log.warn({ dropped }, 'held transactions expired undelivered (the origins still have them)');
      const due = (await this.repo.due(now, DUE_PER_TICK)).filter((r) => !this.inFlight.has(r.id));
      // One destination at a time in order; destinations in parallel.
      const byDestination = new Map<string, HeldRow[]>();
      for (const r of due) byDestination.set(r.destination, [...(byDestination.get(r.destination) ?? []), r]);
      await Promise.all(
        [...byDestination.values()].map(async (rows) => {
          for (const r of rows) if ((await this.attempt(r, 30_000)).kind === 'held') break;
        }),
      );
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'relay retry pass failed');
    }
  }

  /** Tries to deliver one held transaction. */
  private async attempt(row: HeldRow, timeoutMs: number): Promise<Attempt> {
    if (this.inFlight.has(row.id)) return { kind: 'held' };
    this.inFlight.add(row.id);
    const envelope: RelayRequestEnvelope = typeof row.envelope === 'string' ? JSON.parse(row.envelope) : row.envelope;
    try {
      const res = await this.fed.client.forwardSigned({
        destination: row.destination,
        method: envelope.method,
        path: envelope.uri,
        authorization: envelope.authorization as string,
        contentType: envelope.content_type,
        body: decodeBody(envelope.body),
        timeoutMs,
      });
      await this.repo.delivered(row.id, this.clock.now(), res.body);
      this.log.debug({ origin: row.origin, destination: row.destination, txn_id: row.txn_id }, 'held transaction delivered');
      return { kind: 'delivered', body: res.body };
    } catch (err) {
      const status = isFederationError(err) ? (err as { status?: number }).status : undefined;
      // The destination refused what the origin signed (bad or stale signature, malformed):
      // carrying it again cannot help; the origin offers a freshly signed copy if it still wants to.
      if (status !== undefined && status >= 400 && status < 500 && status !== 429 && status !== 408) {
        await this.repo.remove(row.id);
        this.log.warn({ origin: row.origin, destination: row.destination, status }, 'destination refused a held transaction; dropped');
        return { kind: 'refused', reason: (err as Error).message };
      }
      const backoff = Math.min(this.settings.maxRetryMs, 1_000 * 2 ** Math.min(row.attempts, 16));
      await this.repo.failed(row.id, this.clock.now() + backoff, (err as Error).message ?? String(err));
      return { kind: 'held' };
    } finally {
      this.inFlight.delete(row.id);
    }
  }
}
