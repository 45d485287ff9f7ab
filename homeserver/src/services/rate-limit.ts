import type { Redis } from 'ioredis';
import { ParleyError } from '../errors.js';
import type { Clock } from './clock.js';

export interface RateRule {
  burst: number;
  per_minute: number;
}

export interface RateDecision {
  allowed: boolean;
  retryAfterMs: number;
}

export interface RateLimiter {
  take(key: string, rule: RateRule): Promise<RateDecision>;
}

/** Pure token-bucket step, shared by the in-memory limiter and mirrored by the Lua script. */
export function bucketStep(
  state: { tokens: number; updated: number } | undefined,
  rule: RateRule,
  now: number,
): { state: { tokens: number; updated: number }; decision: RateDecision } {
  const perMs = rule.per_minute / 60_000;
  const prev = state ?? { tokens: rule.burst, updated: now };
  const tokens = Math.min(rule.burst, prev.tokens + Math.max(0, now - prev.updated) * perMs);
  if (tokens >= 1) return { state: { tokens: tokens - 1, updated: now }, decision: { allowed: true, retryAfterMs: 0 } };
  return { state: { tokens, updated: now }, decision: { allowed: false, retryAfterMs: Math.ceil((1 - tokens) / perMs) } };
}

export class MemoryRateLimiter implements RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; updated: number }>();

  constructor(
    private readonly clock: Clock,
    private readonly maxKeys = 100_000,
  ) {}

  async take(key: string, rule: RateRule): Promise<RateDecision> {
    const now = this.clock.now();
    const { state, decision } = bucketStep(this.buckets.get(key), rule, now);
    this.buckets.delete(key); // re-insert so Map order is least-recently-used first
    this.buckets.set(key, state);
    if (this.buckets.size > this.maxKeys) {
      const oldest = this.buckets.keys().next().value;
      if (oldest !== undefined) this.buckets.delete(oldest);
    }
    return decision;
  }
}

// Same arithmetic as bucketStep, run atomically in Redis so several processes share buckets.
const TAKE_SCRIPT = `
local burst = tonumber(ARGV[1])
local per_ms = tonumber(ARGV[2]) / 60000
local now = tonumber(ARGV[3])
local data = redis.call('HMGET', KEYS[1], 't', 'u')
local tokens = tonumber(data[1]) or burst
local updated = tonumber(data[2]) or now
local elapsed = now - updated
if elapsed < 0 then elapsed = 0 end
tokens = math.min(burst, tokens + elapsed * per_ms)
local allowed = 0
local retry = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  retry = math.ceil((1 - tokens) / per_ms)
end
redis.call('HSET', KEYS[1], 't', tostring(tokens), 'u', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / per_ms) + 1000)
return {allowed, retry}
`;

export class RedisRateLimiter implements RateLimiter {
  constructor(
    private readonly redis: Redis,
    private readonly clock: Clock,
  ) {}

  async take(key: string, rule: RateRule): Promise<RateDecision> {
    const [allowed, retry] = (await this.redis.eval(TAKE_SCRIPT, 1, `ratelimit:${key}`, rule.burst, rule.per_minute, this.clock.now())) as [
      number,
      number,
    ];
    return { allowed: allowed === 1, retryAfterMs: retry };
  }
}

/** Throws 429 with the delay when the bucket is empty. */
export async function enforce(limiter: RateLimiter | null, key: string, rule: RateRule): Promise<void> {
  if (!limiter) return;
  const decision = await limiter.take(key, rule);
  if (!decision.allowed) {
    throw new ParleyError(429, 'PARLEY_RATE_LIMITED', 'too many requests; slow down', { retryAfterMs: decision.retryAfterMs });
  }
}
