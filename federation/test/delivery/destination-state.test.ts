import { describe, expect, it } from 'vitest';
import {
  type DestinationState,
  DOWN_AFTER,
  MAX_RETRY_MS,
  mayTry,
  onFailure,
  onInbound,
  onSuccess,
  retryDelay,
} from '../../src/delivery/index.js';

describe('retryDelay', () => {
  it.each([
    // [failures, random, expected ms]
    [1, 0, 2_500],
    [1, 1, 5_000],
    [2, 0.5, 7_500],
    [3, 0, 10_000],
    [10, 1, 2_560_000],
    [11, 1, MAX_RETRY_MS],
    [50, 0, MAX_RETRY_MS / 2],
    [1000, 1, MAX_RETRY_MS],
  ])('failures=%s random=%s → %s ms', (failures, random, expected) => {
    expect(retryDelay(failures, () => random)).toBe(expected);
  });

  it.each([0, -1, 1.5, Number.NaN])('refuses failures=%s', (f) => {
    expect(() => retryDelay(f, () => 0)).toThrow(RangeError);
  });
});

describe('destination state transitions', () => {
  const rnd = () => 0;
  it('backs off, goes down after repeated failures, and only success brings it up', () => {
    let s: DestinationState = onSuccess();
    const t0 = 1_000_000;
    for (let i = 1; i <= DOWN_AFTER; i++) {
      s = onFailure(s, t0 + i, rnd);
      expect(s.kind).toBe(i < DOWN_AFTER ? 'backing_off' : 'down');
      if (s.kind !== 'up') {
        expect(s.failures).toBe(i);
        expect(s.sinceTs).toBe(t0 + 1);
      }
    }
    expect(mayTry(s, t0)).toBe(false);
    expect(s.kind !== 'up' && mayTry(s, s.nextTryTs)).toBe(true);
    s = onInbound(s, t0 + 10);
    expect(mayTry(s, t0 + 10)).toBe(true);
    expect(s.kind).toBe('down');
    expect(onSuccess()).toEqual({ kind: 'up' });
  });

  it('an inbound request never delays a retry that was already due sooner', () => {
    const s: DestinationState = { kind: 'backing_off', failures: 2, nextTryTs: 50, sinceTs: 0 };
    expect(onInbound(s, 100)).toEqual(s);
    expect(onInbound({ kind: 'up' }, 100)).toEqual({ kind: 'up' });
  });
});
