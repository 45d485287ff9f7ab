import { generateKeyPairSync, sign } from 'node:crypto';
import { canonicalJson } from '@parley/federation/canonical';
import { describe, expect, it } from 'vitest';
import { verifyBlocklist } from '../src/services/admin/blocklists.js';
import { decide, hostOf, normalizeDomain, parseImport } from '../src/services/admin/domain-policy.js';

// The pure rules behind domain blocks (issue 15), from tables of cases.
describe('domain policy rules', () => {
  it.each([
    ['b.test', 'b.test'],
    ['B.Test.', 'b.test'],
    ['*.spam.example', 'spam.example'],
    ['  padded.example ', 'padded.example'],
    ['192.0.2.1', '192.0.2.1'],
    ['not a domain', undefined],
    ['-bad.example', undefined],
    ['a..b', undefined],
    ['', undefined],
    [`${'a'.repeat(64)}.example`, undefined],
  ])('normalizeDomain(%j) → %j', (raw, expected) => {
    expect(normalizeDomain(raw)).toBe(expected);
  });

  it.each([
    ['b.test', 'b.test'],
    ['b.test:8448', 'b.test'],
    ['B.TEST', 'b.test'],
    ['[::1]:8448', '::1'],
    ['127.0.0.1:8481', '127.0.0.1'],
  ])('hostOf(%j) → %j', (name, host) => {
    expect(hostOf(name)).toBe(host);
  });

  const blocks = new Set(['spam.example', 'evil.test']);
  const allows = new Set(['good.spam.example']);
  it.each([
    ['spam.example', 'spam.example'],
    ['chat.spam.example', 'spam.example'],
    ['deep.chat.spam.example', 'spam.example'],
    ['good.spam.example', undefined],
    ['x.good.spam.example', undefined],
    ['notspam.example', undefined],
    ['evil.test', 'evil.test'],
    ['example', undefined],
    ['b.test', undefined],
  ])('decide(%j) → %j', (host, hit) => {
    expect(decide(host, blocks, allows)).toBe(hit);
  });

  it('parses CSV with our header, Mastodon severities, quotes and blank lines', () => {
    const csv = 'domain,kind,reason\nspam.example,block,"spam, lots"\n\n*.Evil.Test,suspend,\nok.test,allow,partner\nquiet.test,silence,';
    expect(parseImport('csv', csv)).toEqual([
      { domain: 'spam.example', kind: 'block', reason: 'spam, lots' },
      { domain: 'evil.test', kind: 'block', reason: null },
      { domain: 'ok.test', kind: 'allow', reason: 'partner' },
      { domain: 'quiet.test', kind: 'block', reason: null },
    ]);
    expect(parseImport('csv', '#domain,#severity\nm.example,suspend')).toEqual([{ domain: 'm.example', kind: 'block', reason: null }]);
  });

  it('parses JSON as an array or { entries }', () => {
    expect(parseImport('json', '[{"domain":"a.test"},{"domain":"b.test","kind":"allow","reason":"r"}]')).toEqual([
      { domain: 'a.test', kind: 'block', reason: null },
      { domain: 'b.test', kind: 'allow', reason: 'r' },
    ]);
    expect(parseImport('json', '{"entries":[{"domain":"c.test"}]}')).toEqual([{ domain: 'c.test', kind: 'block', reason: null }]);
  });

  it.each([
    ['csv', 'ok.test\nnot a domain', /line 2/],
    ['csv', 'ok.test,mute', /line 1: kind/],
    ['json', '{', /not valid JSON/],
    ['json', '{"x":1}', /expected an array/],
    ['json', '[{"domain":5}]', /entry 0/],
    ['json', '[{"domain":"a.test","reason":7}]', /entry 0: reason/],
    ['json', JSON.stringify(Array.from({ length: 10_001 }, (_, i) => ({ domain: `d${i}.test` }))), /more than 10000/],
  ] as const)('refuses bad %s input naming where: %j', (format, data, message) => {
    expect(() => parseImport(format, data)).toThrow(message);
    try {
      parseImport(format, data);
    } catch (err) {
      expect(err).toMatchObject({ status: 400, field: 'data' });
    }
  });
});

describe('signed blocklists', () => {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const key = publicKey.export({ format: 'jwk' }).x as string;
  const doc = { name: 'List', issued_ts: 5, entries: [{ domain: 'spam.example', reason: 'spam' }] };
  const signed = (d: Record<string, unknown>, k = privateKey) => ({
    ...d,
    signature: sign(null, Buffer.from(canonicalJson(d)), k).toString('base64url'),
  });

  it('accepts a list signed by the subscription key, whatever the key order in the document', () => {
    const s = signed(doc) as typeof doc & { signature: string };
    const reordered = JSON.stringify({ signature: s.signature, entries: s.entries, issued_ts: s.issued_ts, name: s.name });
    expect(verifyBlocklist(reordered, key)).toMatchObject({ ok: true, list: { name: 'List' } });
  });

  it.each([
    ['not JSON', () => '{', /not valid JSON/],
    ['a tampered entry', () => JSON.stringify({ ...signed(doc), entries: [{ domain: 'victim.test' }] }), /signature/],
    ['a tampered issue time', () => JSON.stringify({ ...signed(doc), issued_ts: 6 }), /signature/],
    ['another key', () => JSON.stringify(signed(doc, generateKeyPairSync('ed25519').privateKey)), /signature/],
    ['no signature', () => JSON.stringify(doc), /signature/],
    ['a bad domain', () => JSON.stringify(signed({ ...doc, entries: [{ domain: 'x y' }] })), /domain/],
    ['an extra field', () => JSON.stringify(signed({ ...doc, extra: 1 })), /extra/],
  ])('refuses %s', (_name, text, reason) => {
    const r = verifyBlocklist(text(), key);
    expect(r.ok).toBe(false);
    expect(r.ok ? '' : r.reason).toMatch(reason);
  });

  it('refuses a key that is not an Ed25519 public key (small-order point)', () => {
    // The identity point (all zeros but the sign-less y = 1) is a small-order key.
    const weak = Buffer.alloc(32);
    weak[0] = 1;
    expect(verifyBlocklist(JSON.stringify(signed(doc)), weak.toString('base64url'))).toMatchObject({ ok: false });
  });
});
