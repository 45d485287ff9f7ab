import { Type } from '@sinclair/typebox';

/**
 * The `relay` configuration keys of store-and-forward (documented in docs/operator-guide.md):
 * spread into the `relay` block of the configuration schema, with DEFAULT_RELAY_FALLBACK in its
 * defaults.
 */
export const RelayFallbackKeys = {
  fallback_after_ms: Type.Integer({
    minimum: 0,
    maximum: 86_400_000,
    description:
      'a destination failing directly this long gets its transactions offered to a relay (0: right away; the direct path keeps being tried)',
  }),
  fallback_poll_ms: Type.Integer({
    minimum: 100,
    maximum: 300_000,
    description: 'a transaction a relay holds is offered again this often until the destination acknowledges it',
  }),
  fallback_direct_retry_max_ms: Type.Integer({
    minimum: 1000,
    maximum: 3_600_000,
    description: 'while relaying, the direct path is retried at least this often, so a healed path is used again soon',
  }),
  anchors: Type.Array(Type.String({ minLength: 1, maxLength: 255 }), {
    maxItems: 64,
    description: 'relays this server may fall back to, trusted without a minimum age',
  }),
  anchor_min_age_ms: Type.Integer({
    minimum: 0,
    description: 'a relay found in rooms or bootstrap lists must have been known this long to be chosen',
  }),
  selection_epoch_ms: Type.Integer({ minimum: 60_000, description: 'relays are chosen anew each epoch' }),
  hold_ttl_ms: Type.Integer({
    minimum: 10_000,
    maximum: 86_400_000,
    description: 'as a relay: how long a held transaction (and its answer) is kept',
  }),
  hold_per_origin: Type.Integer({ minimum: 1, maximum: 1_000_000, description: 'as a relay: undelivered transactions held per origin' }),
  hold_per_origin_bytes: Type.Integer({ minimum: 65_536, description: 'as a relay: undelivered bytes held per origin' }),
  hold_max_bytes: Type.Integer({ minimum: 65_536, description: 'as a relay: undelivered bytes held in all' }),
  hold_offers_per_origin: Type.Object(
    { burst: Type.Integer({ minimum: 1 }), per_minute: Type.Number({ exclusiveMinimum: 0 }) },
    { additionalProperties: false, description: 'as a relay: transactions one origin may offer (rate)' },
  ),
};

export const DEFAULT_RELAY_FALLBACK = {
  fallback_after_ms: 10_000,
  fallback_poll_ms: 2_000,
  fallback_direct_retry_max_ms: 30_000,
  anchors: [] as string[],
  anchor_min_age_ms: 86_400_000,
  selection_epoch_ms: 86_400_000,
  hold_ttl_ms: 240_000,
  hold_per_origin: 1000,
  hold_per_origin_bytes: 64 * 1024 * 1024,
  hold_max_bytes: 512 * 1024 * 1024,
  hold_offers_per_origin: { burst: 600, per_minute: 6000 },
};
