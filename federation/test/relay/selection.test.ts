import { describe, expect, it } from 'vitest';
import {
  epochOf,
  networksOf,
  operatorOf,
  type RelayCandidate,
  rankOf,
  type SelectionInput,
  selectRelays,
} from '../../src/relay/selection.js';

const NOW = Date.parse('2026-12-06T12:00:00Z');
const DAY = 86_400_000;
const ROOM = '!abc:a.test';

const old = (serverName: string, extra: Partial<RelayCandidate> = {}): RelayCandidate => ({
  serverName,
  sinceTs: NOW - 30 * DAY,
  ...extra,
});

function input(extra: Partial<SelectionInput> = {}): SelectionInput {
  return {
    scope: ROOM,
    epoch: epochOf(NOW),
    participants: [old('b.test', { addresses: ['198.51.100.2'] }), old('d.test', { addresses: ['203.0.113.4'] })],
    anchors: [
      old('relay1.anchors.org', { addresses: ['192.0.2.10'] }),
      old('relay2.other.net', { addresses: ['100.64.9.9'] }),
      old('relay3.third.io', { addresses: ['2001:db8:aa::1'] }),
    ],
    exclude: ['a.test', 'c.test'],
    now: NOW,
    minAgeMs: DAY,
    count: 3,
    ...extra,
  };
}

describe('relay selection', () => {
  it('gives the same answer on every participant for the same inputs and epoch, whatever the input order', () => {
    const base = input();
    const first = selectRelays(base);
    expect(first).toHaveLength(3);
    // Another participant lists the same servers in another order (and in other letter case).
    const shuffled = selectRelays({
      ...base,
      participants: [...base.participants].reverse(),
      anchors: [...base.anchors].reverse().map((c) => ({ ...c, serverName: c.serverName.toUpperCase() })),
      exclude: ['C.TEST', 'A.TEST'],
    });
    expect(shuffled).toEqual(first);
    // Repeated calls agree.
    expect(selectRelays(base)).toEqual(first);
  });

  it('ranks by a keyed hash: the order depends on the room and the epoch', () => {
    const names = Array.from({ length: 40 }, (_, i) => `s${i}.host${i}.org`);
    const anchors = names.map((n, i) => old(n, { addresses: [`10.${i}.0.1`] }));
    const pick = (scope: string, epoch: number) =>
      selectRelays(input({ scope, epoch, participants: [], anchors, count: 5 })).map((r) => r.serverName);
    const e = epochOf(NOW);
    expect(pick(ROOM, e)).toEqual(pick(ROOM, e));
    expect(pick(ROOM, e)).not.toEqual(pick(ROOM, e + 1));
    expect(pick(ROOM, e)).not.toEqual(pick('!other:a.test', e));
    expect(rankOf(ROOM, e, 'x.test')).toMatch(/^[0-9a-f]{64}$/);
    expect(epochOf(NOW + DAY)).toBe(e + 1);
  });

  it('never chooses the origin or the destination', () => {
    const chosen = selectRelays(input({ participants: [old('a.test'), old('c.test')], anchors: [], count: 5 }));
    expect(chosen).toEqual([]);
  });

  it('a flood of 1,000 new servers cannot capture the selection', () => {
    const honest = selectRelays(input());
    const flood = Array.from({ length: 1000 }, (_, i) =>
      old(`sybil${i}.x${i}.evil`, { sinceTs: NOW - 60_000 - i, addresses: [`${10 + (i % 200)}.${i % 256}.1.1`] }),
    );
    // As new anchors and as newly joined participants alike.
    const flooded = selectRelays(input({ anchors: [...input().anchors, ...flood], participants: [...input().participants, ...flood] }));
    expect(flooded).toEqual(honest);
    expect(flooded.some((r) => r.serverName.includes('sybil'))).toBe(false);
    // Once they have been around for the minimum age they are ordinary candidates again.
    const later = selectRelays(input({ now: NOW + 2 * DAY, anchors: [...input().anchors, ...flood], count: 3 }));
    expect(later).toHaveLength(3);
  });

  it('an old server listed again as new keeps its earliest age (no duplicate entry)', () => {
    const chosen = selectRelays(
      input({
        participants: [old('b.test', { addresses: ['198.51.100.2'] })],
        anchors: [{ serverName: 'b.test', sinceTs: NOW }],
        count: 5,
      }),
    );
    expect(chosen.map((r) => r.serverName)).toEqual(['b.test']);
  });

  it('at most one relay per operator: an operator ID, else the registrable domain', () => {
    const sameDomain = ['r1.bigrelays.com', 'r2.bigrelays.com', 'r3.bigrelays.com'].map((n, i) => old(n, { addresses: [`10.${i}.0.1`] }));
    const chosen = selectRelays(input({ participants: [], anchors: sameDomain, count: 3 }));
    expect(chosen).toHaveLength(1);
    expect(chosen[0]?.operator).toBe('domain:dns:bigrelays.com');
    const sameOperator = [
      old('x.one.org', { operator: 'K1', addresses: ['10.1.0.1'] }),
      old('y.two.net', { operator: 'K1', addresses: ['10.2.0.1'] }),
    ];
    expect(selectRelays(input({ participants: [], anchors: sameOperator, count: 3 }))).toHaveLength(1);
    const distinct = [
      old('x.one.org', { operator: 'K1', addresses: ['10.1.0.1'] }),
      old('y.two.net', { operator: 'K2', addresses: ['10.2.0.1'] }),
    ];
    expect(selectRelays(input({ participants: [], anchors: distinct, count: 3 }))).toHaveLength(2);
  });

  it('at most one relay per IPv4 /16 and per IPv6 /32', () => {
    const v4 = [old('a.one.org', { addresses: ['203.0.1.1'] }), old('b.two.org', { addresses: ['203.0.200.7'] })];
    expect(selectRelays(input({ participants: [], anchors: v4, count: 5 }))).toHaveLength(1);
    const v6 = [old('a.one.org', { addresses: ['2001:db8:1::1'] }), old('b.two.org', { addresses: ['2001:db8:ffff::2'] })];
    expect(selectRelays(input({ participants: [], anchors: v6, count: 5 }))).toHaveLength(1);
    const mapped = [old('a.one.org', { addresses: ['203.0.1.1'] }), old('b.two.org', { addresses: ['::ffff:203.0.9.9'] })];
    expect(selectRelays(input({ participants: [], anchors: mapped, count: 5 }))).toHaveLength(1);
    // IP-literal server names count by their own address.
    const literal = [old('198.51.1.1:8448'), old('198.51.2.2:8448')];
    expect(selectRelays(input({ participants: [], anchors: literal, count: 5 }))).toHaveLength(1);
    const apart = [old('a.one.org', { addresses: ['203.0.1.1'] }), old('b.two.org', { addresses: ['203.1.1.1'] })];
    expect(selectRelays(input({ participants: [], anchors: apart, count: 5 }))).toHaveLength(2);
    expect(networksOf(old('a.one.org', { addresses: ['2001:db8:1::1', '203.0.1.1'] }))).toEqual(['ipv4:203.0', 'ipv6:2001:0db8']);
    expect(operatorOf({ serverName: 'chat.example.org:8448' })).toBe('domain:dns:example.org');
  });

  it('honours count, ignores invalid names and refuses bad arguments', () => {
    expect(selectRelays(input({ count: 1 }))).toHaveLength(1);
    expect(selectRelays(input({ count: 0 }))).toEqual([]);
    expect(selectRelays(input({ participants: [old('not a name')], anchors: [], count: 3 }))).toEqual([]);
    expect(() => selectRelays(input({ count: -1 }))).toThrow(RangeError);
    expect(() => selectRelays(input({ scope: '' }))).toThrow(TypeError);
    expect(() => epochOf(-1)).toThrow(RangeError);
  });
});
