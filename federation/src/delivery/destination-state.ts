/**
 * Delivery state of one destination (docs/protocol.md), as an explicit type rather than flags:
 * up; backing off after failures (retry at `nextTryTs`); down after repeated failures (still
 * retried, on the longest schedule). Only a successful delivery marks it up again; an inbound
 * request from it makes the next try immediate.
 */
export type DestinationState =
  | { kind: 'up' }
  | { kind: 'backing_off'; failures: number; nextTryTs: number; sinceTs: number }
  | { kind: 'down'; failures: number; nextTryTs: number; sinceTs: number };

export const FIRST_RETRY_MS = 5_000;
export const MAX_RETRY_MS = 3_600_000;
/** Failures in a row after which a destination counts as down. */
export const DOWN_AFTER = 6;

/**
 * Exponential backoff with "equal jitter": half the step is fixed, half random, so retries
 * spread out but never come back sooner than half the schedule. 5 s, 10 s, 20 s … capped at 1 h.
 */
export function retryDelay(failures: number, random: () => number): number {
  if (!Number.isInteger(failures) || failures < 1) throw new RangeError(`failures must be a positive integer, got ${failures}`);
  const step = Math.min(MAX_RETRY_MS, FIRST_RETRY_MS * 2 ** Math.min(failures - 1, 30));
  return Math.round(step / 2 + random() * (step / 2));
}

export function onSuccess(): DestinationState {
  return { kind: 'up' };
}

export function onFailure(state: DestinationState, now: number, random: () => number): DestinationState {
  const failures = state.kind === 'up' ? 1 : state.failures + 1;
  const sinceTs = state.kind === 'up' ? now : state.sinceTs;
  const nextTryTs = now + retryDelay(failures, random);
  return failures >= DOWN_AFTER ? { kind: 'down', failures, nextTryTs, sinceTs } : { kind: 'backing_off', failures, nextTryTs, sinceTs };
}

/** The destination just talked to us: it is probably back, so try it now. */
export function onInbound(state: DestinationState, now: number): DestinationState {
  return state.kind === 'up' ? state : { ...state, nextTryTs: Math.min(state.nextTryTs, now) };
}

export function mayTry(state: DestinationState, now: number): boolean {
  return state.kind === 'up' || state.nextTryTs <= now;
}
