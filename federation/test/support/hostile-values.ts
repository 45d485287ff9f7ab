// One table of hostile values, fed to every API (STYLE: noble's "rejects bad input" tests).
// verify…() must return false / a failure object for each; sign…() must throw a TypeError.
const circular: Record<string, unknown> = {};
circular.self = circular;

let deep: unknown = 'bottom';
for (let i = 0; i < 5000; i++) deep = { d: deep };

export const HOSTILE_VALUES: Array<[string, unknown]> = [
  ['undefined', undefined],
  ['null', null],
  ['zero', 0],
  ['NaN', Number.NaN],
  ['a bigint', 10n],
  ['a symbol', Symbol('x')],
  ['true', true],
  ['empty string', ''],
  ['a string', 'not bytes'],
  ['empty object', {}],
  ['null-prototype object', Object.create(null)],
  ['empty array', []],
  ['a function', () => 1],
  ['a Date', new Date(0)],
  ['a Map', new Map()],
  ['empty bytes', new Uint8Array(0)],
  ['31 bytes', new Uint8Array(31)],
  ['64 zero bytes', new Uint8Array(64)],
  ['a DataView', new DataView(new ArrayBuffer(64))],
  ['a circular object', circular],
  ['5000 levels of nesting', deep],
  ['a __proto__ key', JSON.parse('{"__proto__": {"polluted": true}}')],
];
