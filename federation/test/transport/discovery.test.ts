import { describe, expect, it } from 'vitest';
import { FederationError, parseServerName, parseWellKnown, ServerDiscovery, type WellKnownFetcher } from '../../src/transport/index.js';
import { HOSTILE_VALUES } from '../support/hostile-values.js';
import { recordingLog } from './support.js';

function discovery(fetchWellKnown: WellKnownFetcher, extra: { staticServers?: Record<string, string>; clock?: { now: number } } = {}) {
  const log = recordingLog();
  const clock = extra.clock ?? { now: 0 };
  const d = new ServerDiscovery({ fetchWellKnown, staticServers: extra.staticServers, log, now: () => clock.now });
  return { d, log, clock };
}

describe('parseServerName', () => {
  it.each([
    ['b.test', { host: 'b.test', port: undefined, ipVersion: 0 }],
    ['B.Test:8449', { host: 'b.test', port: 8449, ipVersion: 0 }],
    ['127.0.0.1:8481', { host: '127.0.0.1', port: 8481, ipVersion: 4 }],
    ['[::1]:8448', { host: '::1', port: 8448, ipVersion: 6 }],
    ['[2001:db8::1]', { host: '2001:db8::1', port: undefined, ipVersion: 6 }],
    ['localhost', { host: 'localhost', port: undefined, ipVersion: 0 }],
  ])('reads %s', (name, expected) => {
    expect(parseServerName(name)).toEqual(expected);
  });

  it.each([
    'b.test:0',
    'b.test:65536',
    'b.test:08448',
    'b.test:',
    '[::1',
    '[::g]',
    '[1.2.3.4]',
    '::1',
    'a..b',
    '-a.test',
    'a_b.test',
    'b.test/x',
    'u@b.test',
    '0x7f.1',
    '2130706433',
    '127.1',
    '1.2.3.256',
    'a.b.c.0x10',
    'x'.repeat(256),
  ])('refuses %s', (name) => {
    expect(parseServerName(name)).toBeUndefined();
  });

  it.each(HOSTILE_VALUES)('returns undefined for %s', (_name, value) => {
    expect(parseServerName(value)).toBeUndefined();
  });
});

describe('parseWellKnown', () => {
  it.each([
    [{ server: 'fed.b.test' }, { host: 'fed.b.test', port: undefined }],
    [
      { server: 'fed.b.test:443', extra: true },
      { host: 'fed.b.test', port: 443 },
    ],
    [{ server: '[::1]:8448' }, { host: '::1', port: 8448 }],
  ])('reads %j', (doc, expected) => {
    expect(parseWellKnown(doc)).toEqual(expected);
  });

  it.each([
    [{}],
    [{ server: '' }],
    [{ server: 42 }],
    [{ server: 'https://b.test' }],
    [{ server: 'b.test/path' }],
    [['b.test']],
    [JSON.parse('{"__proto__": {"server": "evil.test"}}')],
    [Object.create({ server: 'inherited.test' })],
  ])('refuses %j', (doc) => {
    expect(parseWellKnown(doc)).toBeUndefined();
  });

  it.each(HOSTILE_VALUES)('returns undefined for %s', (_name, value) => {
    expect(parseWellKnown(value)).toBeUndefined();
  });
});

describe('ServerDiscovery', () => {
  it('follows the chain: static map, then literal or explicit port, then well-known, then the name on 8448', async () => {
    const asked: string[] = [];
    const { d, log } = discovery(
      async (name) => {
        asked.push(name);
        if (name === 'delegated.test') return { server: 'fed.delegated.test:443' };
        throw new Error('404');
      },
      { staticServers: { 'mapped.test': '127.0.0.1:8482', 'named.test': 'other.test' } },
    );
    expect(await d.resolve('mapped.test')).toEqual({
      serverName: 'mapped.test',
      host: '127.0.0.1',
      port: 8482,
      tlsServername: 'mapped.test',
      source: 'static',
    });
    expect(await d.resolve('named.test')).toMatchObject({ host: 'other.test', port: 8448, tlsServername: 'other.test', source: 'static' });
    expect(await d.resolve('b.test:8449')).toMatchObject({ host: 'b.test', port: 8449, tlsServername: 'b.test', source: 'literal' });
    expect(await d.resolve('[::1]')).toMatchObject({ host: '::1', port: 8448, source: 'literal' });
    expect(await d.resolve('delegated.test')).toMatchObject({
      host: 'fed.delegated.test',
      port: 443,
      tlsServername: 'fed.delegated.test',
      source: 'well-known',
    });
    expect(await d.resolve('plain.test')).toMatchObject({ host: 'plain.test', port: 8448, tlsServername: 'plain.test', source: 'default' });
    expect(asked).toEqual(['delegated.test', 'plain.test']);
    expect(log.lines.map((l) => l.message)).toEqual([
      'discovery: static map',
      'discovery: static map',
      'discovery: IP literal or explicit port, no delegation',
      'discovery: IP literal or explicit port, no delegation',
      'discovery: well-known delegation',
      'discovery: no well-known delegation, using the name itself',
    ]);
  });

  it('falls back to the name itself when the document is not a delegation', async () => {
    const { d, log } = discovery(async () => ({ server: 'not a name' }));
    expect(await d.resolve('b.test')).toMatchObject({ host: 'b.test', port: 8448, source: 'default' });
    expect(log.lines.at(-1)).toMatchObject({ level: 'warn' });
  });

  it('caches a delegation for an hour and a failed lookup for five minutes', async () => {
    let calls = 0;
    let answer: unknown = { server: 'fed.b.test' };
    const { d, clock } = discovery(async () => {
      calls++;
      if (answer instanceof Error) throw answer;
      return answer;
    });
    await d.resolve('b.test');
    clock.now = 59 * 60_000;
    await d.resolve('b.test');
    expect(calls).toBe(1);
    clock.now = 61 * 60_000;
    answer = new Error('503');
    expect(await d.resolve('b.test')).toMatchObject({ source: 'default' });
    expect(calls).toBe(2);
    clock.now += 4 * 60_000;
    await d.resolve('b.test');
    expect(calls).toBe(2);
    clock.now += 2 * 60_000;
    answer = { server: 'fed.b.test' };
    expect(await d.resolve('b.test')).toMatchObject({ source: 'well-known' });
    expect(calls).toBe(3);
    d.forget('b.test');
    await d.resolve('b.test');
    expect(calls).toBe(4);
  });

  it('asks once for concurrent lookups of the same name', async () => {
    let calls = 0;
    const { d } = discovery(async () => {
      calls++;
      await new Promise((r) => setTimeout(r, 10));
      return { server: 'fed.b.test' };
    });
    const results = await Promise.all([d.resolve('b.test'), d.resolve('b.test'), d.resolve('b.test')]);
    expect(calls).toBe(1);
    expect(new Set(results.map((r) => r.host))).toEqual(new Set(['fed.b.test']));
  });

  it('keeps at most maxCacheEntries names', async () => {
    let calls = 0;
    const d = new ServerDiscovery({
      fetchWellKnown: async () => {
        calls++;
        throw new Error('none');
      },
      maxCacheEntries: 2,
    });
    await d.resolve('a.test');
    await d.resolve('b.test');
    await d.resolve('c.test');
    await d.resolve('c.test');
    await d.resolve('b.test');
    expect(calls).toBe(3);
    await d.resolve('a.test');
    expect(calls).toBe(4);
  });

  it('rejects a name that is not a server name with a dns FederationError, without fetching', async () => {
    let calls = 0;
    const { d } = discovery(async () => {
      calls++;
      return {};
    });
    for (const [, value] of HOSTILE_VALUES) {
      await expect(d.resolve(value as string)).rejects.toSatisfy((err) => err instanceof FederationError && err.kind === 'dns');
    }
    expect(calls).toBe(0);
  });

  it('refuses bad configuration with a TypeError naming it', () => {
    const fetchWellKnown = async () => ({});
    expect(() => new ServerDiscovery({ fetchWellKnown, staticServers: { 'b test': '127.0.0.1' } })).toThrow(/staticServers: "b test"/);
    expect(() => new ServerDiscovery({ fetchWellKnown, staticServers: { 'b.test': 'http://x' } })).toThrow(/staticServers\["b.test"\]/);
    expect(() => new ServerDiscovery({ fetchWellKnown, cacheTtlMs: -1 })).toThrow(/cacheTtlMs/);
    expect(() => new ServerDiscovery({} as never)).toThrow(/fetchWellKnown/);
  });
});
