import type { Config } from '../config.js';
import type { DeliveryEngine } from '../delivery/engine.js';
import type { FederationContext } from '../federation/setup.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import { RelayHeldRepository } from '../repositories/relay-held.js';
import type { Services } from '../services/index.js';
import { MemoryRateLimiter } from '../services/rate-limit.js';
import type { SigningIdentity } from '../services/room-log.js';
import { RelayFallbackService } from './fallback.js';
import { StoreAndForward } from './store-forward.js';

export interface StoreForwardWiring {
  /** The relay's hold, when this server is a relay (relay.enabled). */
  storeForward: StoreAndForward | null;
  fallback: RelayFallbackService;
  stop(): void;
}

/**
 * Store-and-forward (docs/protocol.md): as an origin, the delivery engine offers transactions
 * for a destination it cannot reach to a relay; as a relay (relay.enabled), this server holds
 * and delivers what others offer it for destinations with no reservation here.
 */
export function wireStoreAndForward(d: {
  config: Config;
  services: Services;
  fed: FederationContext;
  delivery: DeliveryEngine;
  identity: SigningIdentity;
  metrics: Metrics;
  log: Logger;
}): StoreForwardWiring {
  const r = d.config.relay;
  const fallback = new RelayFallbackService(
    d.services.db,
    d.fed,
    d.identity,
    () => d.services.bootstrap,
    {
      fallbackAfterMs: r.fallback_after_ms,
      directRetryMaxMs: r.fallback_direct_retry_max_ms,
      pollMs: r.fallback_poll_ms,
      anchors: r.anchors,
      minAgeMs: r.anchor_min_age_ms,
      epochMs: r.selection_epoch_ms,
      tries: 2,
    },
    d.log.child({ component: 'relay-fallback' }),
  );
  d.delivery.relay = fallback;
  let storeForward: StoreAndForward | null = null;
  if (r.enabled) {
    storeForward = new StoreAndForward(
      new RelayHeldRepository(d.services.db),
      d.fed,
      d.services.clock,
      // Relay limits apply even where client rate limits are off.
      d.services.rateLimiter ?? new MemoryRateLimiter(d.services.clock),
      {
        ttlMs: r.hold_ttl_ms,
        perOrigin: r.hold_per_origin,
        perOriginBytes: r.hold_per_origin_bytes,
        maxBytes: r.hold_max_bytes,
        maxBodyBytes: Math.min(r.max_body_bytes, d.config.federation.max_transaction_bytes),
        offers: r.hold_offers_per_origin,
        firstTryMs: 10_000,
        tickMs: 1_000,
        maxRetryMs: 30_000,
      },
      d.log.child({ component: 'relay-hold' }),
      d.metrics.registry,
    );
    storeForward.start();
  }
  return { storeForward, fallback, stop: () => storeForward?.stop() };
}
