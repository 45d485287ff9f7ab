import { describe, expect, it } from 'vitest';
import { canonicalJson, sha256B64u } from '../src/canonical/index.js';
import { HOSTILE_VALUES } from './support/hostile-values.js';
import vectors from './vectors/canonical-json.json' with { type: 'json' };

describe('canonicalJson: RFC 8785 vectors', () => {
  it.each(vectors.accept.map((v) => [v.name, v.input, v.canonical]))('%s', (_name, input, canonical) => {
    expect(canonicalJson(JSON.parse(input))).toBe(canonical);
  });

  it.each(vectors.refuse.map((v) => [v.name, v.input, v.path]))('refuses %s, naming %s', (_name, input, path) => {
    const parsed = JSON.parse(input);
    expect(() => canonicalJson(parsed)).toThrow(TypeError);
    expect(() => canonicalJson(parsed)).toThrow(new RegExp(`^${escapeRegExp(path)}: `));
  });
});

describe('canonicalJson: values JSON text cannot carry', () => {
  class Thing {
    a = 1;
  }
  const sparse: unknown[] = [];
  sparse[1] = 1;
  const symbolKey = { a: 1, [Symbol('s')]: 2 };

  it.each<[string, unknown, string]>([
    ['NaN', { a: Number.NaN }, '$.a: NaN is not a finite number'],
    ['Infinity', [Number.POSITIVE_INFINITY], '$[0]: Infinity is not a finite number'],
    ['a fraction', { a: { b: 0.1 } }, '$.a.b: 0.1 is not an integer'],
    ['2^53', { n: 2 ** 53 }, '$.n: 9007199254740992 is outside ±(2^53 − 1)'],
    ['undefined member', { a: undefined }, '$.a: undefined is not a JSON value'],
    ['undefined in an array', [1, undefined], '$[1]: undefined is not a JSON value'],
    ['a function', { f: () => 1 }, '$.f: function is not a JSON value'],
    ['a bigint', { b: 1n }, '$.b: bigint is not a JSON value'],
    ['a symbol', { s: Symbol('s') }, '$.s: symbol is not a JSON value'],
    ['a Date', { d: new Date(0) }, '$.d: not a plain object'],
    ['a Map', { m: new Map() }, '$.m: not a plain object'],
    ['a class instance', { t: new Thing() }, '$.t: not a plain object'],
    ['a typed array', { u: new Uint8Array(2) }, '$.u: not a plain object'],
    ['an array hole', { h: sparse }, '$.h[0]: array hole'],
    ['a symbol key', symbolKey, '$: symbol keys are not JSON'],
    ['a key needing quotes', { 'a b': { 'c.d': Number.NaN } }, '$["a b"]["c.d"]: NaN is not a finite number'],
  ])('refuses %s with a TypeError naming the path', (_name, value, message) => {
    expect(() => canonicalJson(value)).toThrow(new TypeError(message));
  });

  it('refuses a circular reference, but not a shared one', () => {
    const loop: Record<string, unknown> = { a: 1 };
    loop.self = { back: loop };
    expect(() => canonicalJson(loop)).toThrow(new TypeError('$.self.back: circular reference'));
    const shared = { x: 1 };
    expect(canonicalJson({ a: shared, b: [shared] })).toBe('{"a":{"x":1},"b":[{"x":1}]}');
  });

  it('accepts -0 and writes it as 0 (RFC 8785 §3.2.2.3), so it signs like the 0 a receiver parses', () => {
    expect(canonicalJson({ z: -0 })).toBe('{"z":0}');
    expect(canonicalJson(JSON.parse(canonicalJson({ z: -0 })))).toBe('{"z":0}');
  });

  it('accepts null-prototype objects and the safe-integer bounds', () => {
    const bare = Object.assign(Object.create(null), { b: Number.MAX_SAFE_INTEGER, a: Number.MIN_SAFE_INTEGER });
    expect(canonicalJson(bare)).toBe('{"a":-9007199254740991,"b":9007199254740991}');
  });

  it('keeps a __proto__ key from JSON text as a plain key', () => {
    expect(canonicalJson(JSON.parse('{"__proto__":{"x":1},"a":2}'))).toBe('{"__proto__":{"x":1},"a":2}');
  });

  it('uses a caller-given name for the root', () => {
    expect(() => canonicalJson({ content: { x: 1.5 } }, 'event')).toThrow(new TypeError('event.content.x: 1.5 is not an integer'));
  });

  it.each(HOSTILE_VALUES)('never returns for %s unless it is JSON', (_name, value) => {
    let out: string | undefined;
    try {
      out = canonicalJson(value);
    } catch (err) {
      // Deep nesting may exhaust the stack (RangeError); everything else is a TypeError.
      expect(err instanceof TypeError || err instanceof RangeError).toBe(true);
      return;
    }
    expect(JSON.parse(out)).toEqual(value);
  });
});

describe('sha256B64u', () => {
  it('is unpadded base64url SHA-256 (FIPS 180-4 "abc" vector)', () => {
    // ba7816bf…f20015ad, the SHA-256 of "abc".
    const hex = 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad';
    expect(sha256B64u('abc')).toBe(Buffer.from(hex, 'hex').toString('base64url'));
    expect(sha256B64u(new TextEncoder().encode('abc'))).toBe(sha256B64u('abc'));
    expect(sha256B64u('abc')).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });

  it('hashes strings as UTF-8', () => {
    expect(sha256B64u('é')).toBe(sha256B64u(Buffer.from([0xc3, 0xa9])));
  });

  it.each(HOSTILE_VALUES.filter(([, v]) => typeof v !== 'string' && !(v instanceof Uint8Array)))(
    'throws a TypeError for %s',
    (_n, value) => {
      expect(() => sha256B64u(value as string)).toThrow(new TypeError('data: expected a Uint8Array or a string'));
    },
  );
});

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
