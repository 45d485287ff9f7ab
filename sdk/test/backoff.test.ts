import { describe, expect, it } from 'vitest';
import { backoffDelay, DEFAULT_BACKOFF } from '../src/index.js';
import vectors from './vectors/backoff.json' with { type: 'json' };

describe('backoffDelay', () => {
  it.each(vectors.cases)('$name', ({ attempt, initialMs, maxMs, random, delayMs }) => {
    expect(backoffDelay(attempt, { initialMs, maxMs }, () => random)).toBe(delayMs);
  });

  it.each(vectors.rejects)('rejects $name', ({ attempt, initialMs, maxMs, random, error }) => {
    expect(() => backoffDelay(attempt, { initialMs, maxMs }, () => random)).toThrow(error);
  });

  it('stays within [0, cap) for Math.random', () => {
    for (let attempt = 0; attempt < 20; attempt++) {
      const delay = backoffDelay(attempt, DEFAULT_BACKOFF);
      expect(delay).toBeGreaterThanOrEqual(0);
      expect(delay).toBeLessThan(Math.min(DEFAULT_BACKOFF.maxMs, DEFAULT_BACKOFF.initialMs * 2 ** attempt));
    }
  });

  it('rejects options that are not an object', () => {
    expect(() => backoffDelay(0, null as never)).toThrow(new TypeError('options must be an object'));
  });
});
