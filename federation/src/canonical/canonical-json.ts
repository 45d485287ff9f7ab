import canonicalize from 'canonicalize';

/**
 * Canonical JSON (RFC 8785, JSON Canonicalization Scheme) for everything Parley signs or
 * hashes (docs/protocol.md). Serialization itself is the maintained `canonicalize` package; this
 * module only narrows the input to the I-JSON subset we sign, and refuses the rest with a
 * TypeError that names the JSON path, instead of letting JSON.stringify quietly drop or
 * rewrite a value (undefined, functions, Dates, Maps all serialize as something else).
 *
 * Numbers: integers within ±(2^53 − 1) only. RFC 8785 §3.2.2.3 serializes numbers with the
 * ECMAScript algorithm, so fractions would round-trip exactly in JS but not through other
 * languages' parsers; RFC 7493 (I-JSON) §2.2 recommends staying inside the IEEE 754 safe
 * integer range for interoperability. `-0` is accepted and serializes as `0`, exactly as
 * RFC 8785 §3.2.2.3 prescribes; a receiver parsing `0` gets the same signed bytes back.
 * The check is on values, not source text: `JSON.parse('1.0')` is the integer 1.
 */
export function canonicalJson(value: unknown, name = '$'): string {
  assertSignable(value, name, []);
  const out = canonicalize(value);
  // Unreachable after assertSignable; keeps the type honest.
  if (out === undefined) throw new TypeError(`${name}: not serializable as JSON`);
  return out;
}

const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

function childPath(path: string, key: string | number): string {
  if (typeof key === 'number') return `${path}[${key}]`;
  return IDENTIFIER.test(key) ? `${path}.${key}` : `${path}[${JSON.stringify(key)}]`;
}

function assertSignable(value: unknown, path: string, ancestors: object[]): void {
  switch (typeof value) {
    case 'string':
      // RFC 8785 §3.2.2.2 / RFC 7493 §2.1: lone surrogates have no UTF-8 form to hash.
      if (!value.isWellFormed()) throw new TypeError(`${path}: string contains an unpaired surrogate`);
      return;
    case 'boolean':
      return;
    case 'number':
      if (!Number.isFinite(value)) throw new TypeError(`${path}: ${value} is not a finite number`);
      if (!Number.isInteger(value)) throw new TypeError(`${path}: ${value} is not an integer`);
      if (!Number.isSafeInteger(value)) throw new TypeError(`${path}: ${value} is outside ±(2^53 − 1)`);
      return;
    case 'object':
      if (value === null) return;
      assertContainer(value, path, ancestors);
      return;
    default:
      // undefined, function, bigint, symbol: JSON has no form for them.
      throw new TypeError(`${path}: ${typeof value} is not a JSON value`);
  }
}

function assertContainer(value: object, path: string, ancestors: object[]): void {
  if (ancestors.includes(value)) throw new TypeError(`${path}: circular reference`);
  const proto = Object.getPrototypeOf(value);
  if (Array.isArray(value)) {
    if (proto !== Array.prototype) throw new TypeError(`${path}: not a plain array`);
    ancestors.push(value);
    for (let i = 0; i < value.length; i++) {
      // A hole would serialize as null: a value the signer never wrote.
      if (!(i in value)) throw new TypeError(`${childPath(path, i)}: array hole`);
      assertSignable(value[i], childPath(path, i), ancestors);
    }
    ancestors.pop();
    return;
  }
  // Dates, Maps, class instances and toJSON() objects serialize as something else than they are.
  if (proto !== Object.prototype && proto !== null) throw new TypeError(`${path}: not a plain object`);
  if (Object.getOwnPropertySymbols(value).length > 0) throw new TypeError(`${path}: symbol keys are not JSON`);
  ancestors.push(value);
  for (const [key, item] of Object.entries(value)) {
    if (!key.isWellFormed()) throw new TypeError(`${path}: a key contains an unpaired surrogate`);
    assertSignable(item, childPath(path, key), ancestors);
  }
  ancestors.pop();
}
