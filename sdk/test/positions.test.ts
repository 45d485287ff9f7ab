import { describe, expect, it } from 'vitest';
import { framesToEmit, isPosition, positionAfterReady, streamUrl } from '../src/index.js';
import vectors from './vectors/stream-positions.json' with { type: 'json' };

describe('framesToEmit', () => {
  it.each(vectors.framesToEmit)('$name', ({ last, positions, emit }) => {
    const frames = positions.map((position, i) => ({ position, i }));
    expect(framesToEmit(last, frames).map((f) => f.position)).toEqual(emit);
  });

  it('keeps the first of two frames with one position', () => {
    const out = framesToEmit(null, [
      { position: 1, tag: 'a' },
      { position: 1, tag: 'b' },
    ]);
    expect(out).toEqual([{ position: 1, tag: 'a' }]);
  });

  it('does not reorder the array it was given', () => {
    const frames = [{ position: 2 }, { position: 1 }];
    framesToEmit(null, frames);
    expect(frames).toEqual([{ position: 2 }, { position: 1 }]);
  });
});

describe('positionAfterReady', () => {
  it.each(vectors.positionAfterReady)('$name', ({ last, ready, position }) => {
    expect(positionAfterReady(last, ready)).toBe(position);
  });
});

describe('streamUrl', () => {
  it.each(vectors.streamUrl)('$baseUrl', ({ baseUrl, url }) => {
    expect(streamUrl(baseUrl)).toBe(url);
  });

  it('rejects a base URL that is not http(s)', () => {
    expect(() => streamUrl('ftp://example.org')).toThrow(TypeError);
  });
});

describe('isPosition', () => {
  it.each([
    [0, true],
    [17, true],
    [-1, false],
    [1.5, false],
    [Number.NaN, false],
    [2 ** 53, false],
    ['3', false],
    [null, false],
  ])('%s → %s', (value, expected) => {
    expect(isPosition(value)).toBe(expected);
  });
});
