import { afterEach, describe, expect, it, vi } from 'vitest';
import { Emitter } from '../src/index.js';

interface Events {
  ping: number;
  pong: string;
}

class TestEmitter extends Emitter<Events> {
  fire<K extends keyof Events>(type: K, payload: Events[K]): void {
    this.emit(type, payload);
  }
}

describe('Emitter', () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it('calls listeners in order and unsubscribes through the returned function', () => {
    const e = new TestEmitter();
    const seen: string[] = [];
    const off = e.on('ping', (n) => seen.push(`a${n}`));
    e.on('ping', (n) => seen.push(`b${n}`));
    e.fire('ping', 1);
    off();
    e.fire('ping', 2);
    expect(seen).toEqual(['a1', 'b1', 'b2']);
  });

  it('off removes a listener; once runs at most once', () => {
    const e = new TestEmitter();
    const seen: string[] = [];
    const fn = (s: string) => seen.push(`on:${s}`);
    e.on('pong', fn);
    e.once('pong', (s) => seen.push(`once:${s}`));
    e.fire('pong', 'x');
    e.off('pong', fn);
    e.fire('pong', 'y');
    expect(seen).toEqual(['on:x', 'once:x']);
  });

  it('a throwing listener does not stop the others; its error surfaces on a microtask', async () => {
    const e = new TestEmitter();
    const surfaced: unknown[] = [];
    vi.spyOn(globalThis, 'queueMicrotask').mockImplementation((cb) => {
      try {
        cb();
      } catch (err) {
        surfaced.push(err);
      }
    });
    const seen: number[] = [];
    e.on('ping', () => {
      throw new Error('boom');
    });
    e.on('ping', (n) => seen.push(n));
    e.fire('ping', 7);
    expect(seen).toEqual([7]);
    expect(surfaced).toEqual([new Error('boom')]);
  });

  it('rejects a listener that is not a function', () => {
    expect(() => new TestEmitter().on('ping', 'nope' as never)).toThrow(new TypeError('listener must be a function'));
  });
});
