import { canonicalJson } from '@parley/federation/canonical';
import {
  buildRequestEnvelope,
  epochOf,
  type RelayCandidate,
  relayForwardPath,
  selectRelays,
  verifyReceipt,
} from '@parley/federation/relay';
import { signRequest } from '@parley/federation/transport';
import type { Db } from '../db/database.js';
import type { OutgoingTransaction, RelayFallback } from '../delivery/engine.js';
import type { BootstrapService } from '../federation/bootstrap.js';
import type { FederationContext } from '../federation/setup.js';
import type { Logger } from '../logger.js';
import type { SigningIdentity } from '../services/room-log.js';

export interface FallbackSettings {
  fallbackAfterMs: number;
  directRetryMaxMs: number;
  pollMs: number;
  /** Relays the operator names: trusted as old (no minimum age). */
  anchors: string[];
  /** Participants and discovered anchors must have been known this long. */
  minAgeMs: number;
  epochMs: number;
  /** Relays tried per offer, in selection order. */
  tries: number;
}

const OFFER_TIMEOUT_MS = 15_000;
const MAX_PARTICIPANTS = 256;
const CACHE_MS = 60_000;

/**
 * The origin's side of store-and-forward (docs/protocol.md): chooses relays for a destination
 * (selectRelays over the servers sharing rooms with it that advertise the relay capability, the
 * operator's anchors and relay-capable servers from the bootstrap book), signs the transaction
 * for the destination exactly as a direct send would, and offers it to the first relay that
 * takes it. 'delivered' only with the destination's signed receipt; a relay's word is not enough.
 */
export class RelayFallbackService implements RelayFallback {
  readonly fallbackAfterMs: number;
  readonly directRetryMaxMs: number;
  readonly pollMs: number;

  constructor(
    private readonly db: Db,
    private readonly fed: FederationContext,
    private readonly identity: SigningIdentity,
    private readonly bootstrap: () => BootstrapService | null,
    private readonly settings: FallbackSettings,
    private readonly log: Logger,
  ) {
    this.fallbackAfterMs = settings.fallbackAfterMs;
    this.directRetryMaxMs = settings.directRetryMaxMs;
    this.pollMs = settings.pollMs;
  }

  private readonly cache = new Map<string, { until: number; relays: string[] }>();

  /** The relays for a destination now, best first (recomputed at most once a minute). */
  async relaysFor(destination: string): Promise<string[]> {
    const now = this.fed.clock.now();
    const cached = this.cache.get(destination);
    if (cached && cached.until > now) return cached.relays;
    const relays = await this.choose(destination, now);
    if (this.cache.size > 10_000) this.cache.clear();
    this.cache.set(destination, { until: now + CACHE_MS, relays });
    return relays;
  }

  private async choose(destination: string, now: number): Promise<string[]> {
    const anchors: RelayCandidate[] = this.settings.anchors.map((serverName) => ({ serverName, sinceTs: 0 }));
    for (const e of this.bootstrap()?.book.entries() ?? []) {
      if (!e.descriptor.capabilities.includes('relay')) continue;
      anchors.push({
        serverName: e.serverName,
        sinceTs: e.addedTs,
        operator: Object.values(e.descriptor.verify_keys)[0]?.key,
        addresses: e.descriptor.endpoints.map((p) => p.host),
      });
    }
    const participants = await this.participants(destination);
    return selectRelays({
      scope: destination,
      epoch: epochOf(now, this.settings.epochMs),
      participants,
      anchors,
      exclude: [this.fed.serverName, destination],
      now,
      minAgeMs: this.settings.minAgeMs,
      count: this.settings.tries,
    }).map((r) => r.serverName);
  }

  /** Servers in rooms shared with the destination that advertise the relay capability, known since their first event there. */
  private async participants(destination: string): Promise<RelayCandidate[]> {
    const serverOf = "substring(sender from position(':' in sender) + 1)";
    const rows = (await this.db('events')
      .whereIn(
        'room_id',
        this.db('memberships')
          .where({ membership: 'join' })
          .andWhereRaw("substring(user_id from position(':' in user_id) + 1) = ?", [destination])
          .select('room_id'),
      )
      .groupByRaw(serverOf)
      .select(this.db.raw(`${serverOf} as server`), this.db.raw('min(origin_ts)::bigint as since'))
      .limit(MAX_PARTICIPANTS)) as Array<{ server: string; since: number }>;
    const out: RelayCandidate[] = [];
    for (const r of rows) {
      if (r.server === destination || r.server === this.fed.serverName) continue;
      // Only documents already known: choosing a relay must not dial every participant.
      const doc =
        this.fed.keyStore.knownKeyIds(r.server).length > 0
          ? await this.fed.keyStore.getDocument(r.server).catch(() => undefined)
          : undefined;
      if (doc?.capabilities?.relay) out.push({ serverName: r.server, sinceTs: Number(r.since) });
    }
    return out;
  }

  async offer(destination: string, txn: OutgoingTransaction): Promise<'delivered' | 'held'> {
    const relays = await this.relaysFor(destination);
    if (relays.length === 0) throw Object.assign(new Error(`no relay is available for ${destination}`), { noRelay: true });
    const content = { events: txn.events, edus: txn.edus };
    const uri = `/federation/v1/send/${encodeURIComponent(txn.txnId)}`;
    const authorization = signRequest(
      { method: 'PUT', uri, origin: this.fed.serverName, destination, content, ts: this.fed.clock.now() },
      this.identity,
    );
    const envelope = buildRequestEnvelope({
      destination,
      method: 'PUT',
      uri,
      authorization,
      body: new TextEncoder().encode(canonicalJson(content, 'body')),
    });
    let lastError: unknown;
    for (const relay of relays) {
      try {
        const res = await this.fed.client.request({
          destination: relay,
          method: 'POST',
          path: relayForwardPath(destination),
          body: envelope,
          timeoutMs: OFFER_TIMEOUT_MS,
        });
        if (res.status !== 200) return 'held';
        const receipt = (res.body as { receipt?: unknown } | null)?.receipt;
        const check = await verifyReceipt(receipt, { origin: this.fed.serverName, destination, txnId: txn.txnId }, (server, keyId) =>
          this.fed.keyStore.getKey(server, keyId),
        );
        if (check.ok) return 'delivered';
        // A relay that says "delivered" without the destination's receipt proves nothing: keep it pending.
        this.log.warn(
          { relay, destination, reason: check.reason },
          'relay answered without a valid receipt; the transaction stays pending',
        );
        return 'held';
      } catch (err) {
        lastError = err;
        this.log.debug({ relay, destination, err: (err as Error).message }, 'relay did not take the transaction');
      }
    }
    throw lastError instanceof Error ? lastError : new Error(`no relay took the transaction for ${destination}`);
  }
}
