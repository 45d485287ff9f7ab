/** Reconnect delays: exponential growth from `initialMs`, capped at `maxMs`. */
export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
}

export const DEFAULT_BACKOFF: Readonly<BackoffOptions> = Object.freeze({ initialMs: 500, maxMs: 30_000 });

/**
 * "Full jitter" (AWS Architecture Blog, "Exponential Backoff And Jitter", 2015): a uniform
 * draw from [0, min(max, initial·2^attempt)). Spreading the whole range, not a band around
 * the cap, is what stops every client of a restarted server from reconnecting in lockstep.
 * `attempt` counts from 0; `random` returns a number in [0, 1) like Math.random.
 */
export function backoffDelay(attempt: number, options: BackoffOptions, random: () => number = Math.random): number {
  if (!Number.isSafeInteger(attempt) || attempt < 0) throw new RangeError('attempt must be a non-negative integer');
  assertBackoffOptions(options, 'options');
  const r = random();
  if (typeof r !== 'number' || !(r >= 0 && r < 1)) throw new RangeError('random() must return a number in [0, 1)');
  // 2 ** attempt becomes Infinity for huge attempts, which Math.min then caps.
  const ceiling = Math.min(options.maxMs, options.initialMs * 2 ** attempt);
  return Math.floor(r * ceiling);
}

export function assertBackoffOptions(value: unknown, name: string): BackoffOptions {
  if (typeof value !== 'object' || value === null) throw new TypeError(`${name} must be an object`);
  const { initialMs, maxMs } = value as Record<string, unknown>;
  if (typeof initialMs !== 'number' || !Number.isFinite(initialMs) || initialMs <= 0) {
    throw new RangeError(`${name}.initialMs must be a positive number`);
  }
  if (typeof maxMs !== 'number' || !Number.isFinite(maxMs) || maxMs < initialMs) {
    throw new RangeError(`${name}.maxMs must be a number no smaller than initialMs`);
  }
  return { initialMs, maxMs };
}
