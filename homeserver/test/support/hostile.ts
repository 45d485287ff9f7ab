/**
 * The shared table of hostile inputs. Every endpoint test feeds these to every field it
 * has and to its body as a whole; none may produce a 5xx.
 */

/** Values that are wrong for any string field: the answer must be a 4xx naming the field. */
export const invalidFieldValues: Array<[string, unknown]> = [
  ['number', 12345],
  ['negative float', -1.5],
  ['boolean', true],
  ['null', null],
  ['array', ['a', 'b']],
  ['object', { nested: 'x' }],
  ['huge string (20 KB, under the body cap)', 'x'.repeat(20_000)],
  ['NUL byte', 'abc\u0000def'],
  ['lone high surrogate', 'abc\ud800'],
  ['lone low surrogate', '\udc00xyz'],
];

/** Odd but well-formed text: may be accepted or refused, never a 5xx. */
export const edgeFieldValues: Array<[string, unknown]> = [
  ['empty string', ''],
  ['whitespace only', '   \t\n '],
  ['emoji and ZWJ sequence', '👩‍👩‍👧‍👦🏳️‍🌈'],
  ['right-to-left override', '\u202Eevil\u202C'],
  ['combining marks', 'Z̴̡̧̛͔̦̗a̶l̷g̸o̵'],
  ['zero-width characters', 'a\u200Bb\uFEFFc'],
  ['4-byte code points', '𝕳𝖊𝖑𝖑𝖔 𠜎𠜱'],
  ['SQL-ish', "'; DROP TABLE users; --"],
  ['HTML', '<script>alert(1)</script>'],
  ['path traversal', '../../etc/passwd'],
  ['long (5,000 chars)', 'é'.repeat(5000)],
];

export interface RawBody {
  name: string;
  body: string | Buffer;
  contentType: string;
}

/** Whole-body attacks. */
export const hostileBodies: RawBody[] = [
  { name: 'invalid JSON', body: '{"username": ', contentType: 'application/json' },
  { name: 'trailing garbage', body: '{}garbage', contentType: 'application/json' },
  { name: 'JSON array', body: '[1,2,3]', contentType: 'application/json' },
  { name: 'JSON string', body: '"hello"', contentType: 'application/json' },
  { name: 'JSON null', body: 'null', contentType: 'application/json' },
  { name: 'JSON number', body: '42', contentType: 'application/json' },
  { name: '__proto__ key', body: '{"__proto__": {"is_admin": true}}', contentType: 'application/json' },
  { name: 'deeply nested', body: `${'['.repeat(5000)}${']'.repeat(5000)}`, contentType: 'application/json' },
  { name: 'deep object', body: `{"a":${'{"a":'.repeat(100)}1${'}'.repeat(100)}}`, contentType: 'application/json' },
  { name: 'over the body cap (1 MiB)', body: JSON.stringify({ username: 'x'.repeat(1 << 20) }), contentType: 'application/json' },
  { name: 'wrong content type', body: '{"username":"a"}', contentType: 'text/plain' },
  { name: 'form encoded', body: 'username=a&password=b', contentType: 'application/x-www-form-urlencoded' },
  { name: 'non-UTF-8 charset', body: '{}', contentType: 'application/json; charset=latin1' },
  {
    name: 'invalid UTF-8 bytes',
    body: Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d]),
    contentType: 'application/json',
  },
];

/** Path segments standing in for IDs. */
export const hostilePathSegments: string[] = [
  '%00',
  'a%00b',
  '..%2F..%2Fetc',
  encodeURIComponent('x'.repeat(2000)),
  encodeURIComponent('💥'),
  encodeURIComponent('@user'),
  encodeURIComponent('@:'),
  encodeURIComponent('@ali ce:hs1.test'),
  '%E0%A4%A',
];

export const hostileAuthHeaders: string[] = [
  'Bearer',
  'Bearer ',
  'Basic dXNlcjpwYXNz',
  `Bearer ${'a'.repeat(10_000)}`,
  'Bearer pat_zzzz_yyyy',
  'Bearer pat_000000000000000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',
  'Bearer prt_000000000000000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',
];
