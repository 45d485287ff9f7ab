import type { RoomEvent, SeqRecord } from '@parley/schemas';
import { describe, expect, it } from 'vitest';
import { type AuthorizeFn, type ChainEntry, type StateMap, stateKey, verifyChain } from '../src/chain/index.js';
import { eventId, recordHash, redact, signEvent, signRecord, type UnsignedEvent } from '../src/events/index.js';
import { generateSigningKey, keyRingOf, type SigningKey } from '../src/keys/index.js';
import { HOSTILE_VALUES } from './support/hostile-values.js';

// A room hosted on a.test with a participant b.test, each with a freshly generated key.
const hostKey = generateSigningKey();
const bKey = generateSigningKey();
const ring = keyRingOf({ 'a.test': { [hostKey.keyId]: hostKey.publicKey }, 'b.test': { [bKey.keyId]: bKey.publicKey } });
const ROOM = '!room:a.test';
const keys: Record<string, SigningKey> = { 'a.test': hostKey, 'b.test': bKey };

let lamport = 0;
function event(sender: string, type: string, content: Record<string, unknown>, extra: Partial<UnsignedEvent> = {}): RoomEvent {
  const origin = sender.slice(sender.indexOf(':') + 1);
  const unsigned = { room_id: ROOM, type, sender, origin, origin_ts: 1_700_000_000_000 + lamport, lamport: lamport++, content, ...extra };
  return signEvent(unsigned, origin, keys[origin]!).event;
}

function sequence(events: RoomEvent[], roomId = ROOM, start: { seq: number; prev: string | null } = { seq: 0, prev: null }): ChainEntry[] {
  let prev = start.prev;
  return events.map((e, i) => {
    const record = signRecord(
      { room_id: roomId, seq: start.seq + i + 1, event_id: eventId(e), prev, host_ts: 1_700_000_001_000 + i },
      'a.test',
      hostKey,
    );
    prev = recordHash(record);
    return { event: e, record };
  });
}

const history = [
  event('@alice:a.test', 'room.create', { creator: '@alice:a.test', kind: 'room', version: 1 }, { state_key: '' }),
  event('@alice:a.test', 'room.member', { membership: 'join' }, { state_key: '@alice:a.test' }),
  event('@alice:a.test', 'room.message', { body: 'hello' }),
  event('@bob:b.test', 'room.member', { membership: 'join', displayname: 'Bob' }, { state_key: '@bob:b.test' }),
  event('@bob:b.test', 'room.message', { body: 'hi from b' }),
  event('@alice:a.test', 'room.message', { body: 'welcome' }),
];
const chain = sequence(history);
const clone = (entries: ChainEntry[]) => structuredClone(entries);

describe('verifyChain: an honest chain', () => {
  it('verifies and returns the head record hash, the count and the state', () => {
    const result = verifyChain(chain, ring);
    expect(result).toMatchObject({ ok: true, head: recordHash(chain.at(-1)!.record), count: 6 });
    if (result.ok)
      expect([...result.state.keys()].sort()).toEqual(
        [stateKey('room.create', ''), stateKey('room.member', '@alice:a.test'), stateKey('room.member', '@bob:b.test')].sort(),
      );
  });

  it('verifies an empty chain', () => {
    expect(verifyChain([], ring)).toMatchObject({ ok: true, head: null, count: 0 });
  });
});

describe('verifyChain: each tampering is caught at the first bad entry', () => {
  const cases: Array<[string, () => ChainEntry[], { seq: number; kind: string }]> = [
    [
      'changed content',
      () => {
        const c = clone(chain);
        c[2]!.event.content = { body: 'goodbye' };
        return c;
      },
      { seq: 3, kind: 'content_hash' },
    ],
    [
      'changed membership (a key that survives redaction changes the event ID)',
      () => {
        const c = clone(chain);
        c[3]!.event.content = { membership: 'ban', displayname: 'Bob' };
        return c;
      },
      { seq: 4, kind: 'event_id' },
    ],
    ['reordered entries', () => [chain[0]!, chain[1]!, chain[3]!, chain[2]!, chain[4]!, chain[5]!], { seq: 3, kind: 'seq' }],
    [
      'reordered events under their records',
      () => {
        const c = clone(chain);
        [c[2]!.event, c[3]!.event] = [c[3]!.event, c[2]!.event];
        return c;
      },
      { seq: 3, kind: 'event_id' },
    ],
    ['dropped entry', () => [chain[0]!, chain[1]!, chain[3]!, chain[4]!, chain[5]!], { seq: 3, kind: 'seq' }],
    ['dropped first entry', () => chain.slice(1), { seq: 1, kind: 'seq' }],
    [
      'forged event signature',
      () => {
        const c = clone(chain);
        const forger = generateSigningKey();
        const forged = signEvent({ ...c[4]!.event, signatures: {} }, 'b.test', { ...forger, keyId: bKey.keyId }).event;
        c[4]!.event = forged;
        return c;
      },
      { seq: 5, kind: 'signature' },
    ],
    [
      'event claiming another server as origin',
      () => {
        const c = clone(chain);
        c[4]!.event.origin = 'a.test';
        return c;
      },
      { seq: 5, kind: 'event_id' },
    ],
    [
      'forged record signature',
      () => {
        const c = clone(chain);
        c[3]!.record = signRecord(c[3]!.record, 'a.test', { ...generateSigningKey(), keyId: hostKey.keyId });
        return c;
      },
      { seq: 4, kind: 'record_signature' },
    ],
    [
      'record signed by a participant',
      () => {
        const c = clone(chain);
        c[3]!.record.signatures = { 'b.test': signRecord({ ...c[3]!.record, room_id: '!x:b.test' }, 'b.test', bKey).signatures['b.test']! };
        return c;
      },
      { seq: 4, kind: 'record_signature' },
    ],
    [
      'wrong prev, even when the host signs it',
      () => {
        const c = clone(chain);
        c[2]!.record = signRecord({ ...c[2]!.record, prev: recordHash(c[0]!.record) }, 'a.test', hostKey);
        return c;
      },
      { seq: 3, kind: 'prev' },
    ],
    [
      'an event from another room under this room’s record',
      () => {
        const c = clone(chain);
        const foreign = event('@alice:a.test', 'room.message', { body: 'elsewhere' }, { room_id: '!other:a.test' });
        c[2] = { event: foreign, record: signRecord({ ...c[2]!.record, event_id: eventId(foreign) }, 'a.test', hostKey) };
        return c;
      },
      { seq: 3, kind: 'room' },
    ],
    [
      'a whole entry of another room',
      () => {
        const other = sequence(
          [event('@alice:a.test', 'room.message', { body: 'elsewhere' }, { room_id: '!other:a.test' })],
          '!other:a.test',
          { seq: 2, prev: recordHash(chain[1]!.record) },
        );
        return [chain[0]!, chain[1]!, other[0]!];
      },
      { seq: 3, kind: 'room' },
    ],
    [
      'a record with seq skipping ahead',
      () => {
        const c = clone(chain);
        c[5]!.record = signRecord({ ...c[5]!.record, seq: 7 }, 'a.test', hostKey);
        return c;
      },
      { seq: 6, kind: 'seq' },
    ],
    [
      'an event from a server whose key is unknown',
      () =>
        sequence([
          ...history.slice(0, 2),
          signEvent({ ...history[4]!, sender: '@carol:c.test', origin: 'c.test', signatures: {} }, 'c.test', bKey).event,
        ]),
      { seq: 3, kind: 'signature' },
    ],
  ];

  it.each(cases)('%s', (_name, build, expected) => {
    const entries = build();
    const result = verifyChain(entries, ring);
    expect(result).toMatchObject({ ok: false, ...expected });
    if (!result.ok) {
      expect(result.reason.length).toBeGreaterThan(0);
      expect(result.event_id).toBe(entries[expected.seq - 1]!.record.event_id);
    }
  });
});

describe('verifyChain: redacted events', () => {
  const redacted = clone(chain);
  redacted[2]!.event = redact(redacted[2]!.event);
  redacted[3]!.event = { ...redact(redacted[3]!.event), unsigned: { redacted_because: '$x' } };

  it('a chain with redacted events still verifies', () => {
    expect(verifyChain(redacted, ring)).toMatchObject({ ok: true, count: 6, head: recordHash(chain[5]!.record) });
  });

  it('with redactedEventIds, only the listed events may arrive redacted', () => {
    const ids = new Set([redacted[2]!.record.event_id, redacted[3]!.record.event_id]);
    expect(verifyChain(redacted, ring, undefined, { redactedEventIds: ids })).toMatchObject({ ok: true });
    const partial = new Set([redacted[2]!.record.event_id]);
    expect(verifyChain(redacted, ring, undefined, { redactedEventIds: partial })).toMatchObject({
      ok: false,
      seq: 4,
      kind: 'content_hash',
    });
  });

  it('stripping content that redaction keeps is not a redaction', () => {
    const c = clone(chain);
    c[3]!.event.content = {};
    expect(verifyChain(c, ring)).toMatchObject({ ok: false, seq: 4, kind: 'event_id' });
  });
});

describe('verifyChain: auth replay', () => {
  // A stand-in for the room's auth rules (federation/src/room/ holds the real ones).
  const joinedOnly: AuthorizeFn = (state, e) => {
    if (e.type === 'room.create') return state.size === 0 ? { ok: true } : { ok: false, reason: 'second create' };
    if (e.type === 'room.member' && e.state_key === e.sender) return { ok: true };
    const member = state.get(stateKey('room.member', e.sender));
    return member?.content.membership === 'join' ? { ok: true } : { ok: false, reason: `${e.sender} is not joined` };
  };

  it('runs authorize against the state before each event, every event', () => {
    const seen: Array<[string, number]> = [];
    const spy: AuthorizeFn = (state, e) => {
      seen.push([e.type, state.size]);
      return joinedOnly(state, e);
    };
    expect(verifyChain(chain, ring, spy)).toMatchObject({ ok: true });
    expect(seen).toEqual([
      ['room.create', 0],
      ['room.member', 1],
      ['room.message', 2],
      ['room.member', 2],
      ['room.message', 3],
      ['room.message', 3],
    ]);
  });

  it('reports the first event the rules refuse', () => {
    const early = sequence([history[0]!, history[1]!, history[4]!, history[3]!]);
    expect(verifyChain(early, ring, joinedOnly)).toMatchObject({ ok: false, seq: 3, kind: 'auth', reason: '@bob:b.test is not joined' });
  });

  it('turns an authorize that throws into an auth failure', () => {
    const broken: AuthorizeFn = () => {
      throw new Error('bug');
    };
    expect(verifyChain(chain, ring, broken)).toMatchObject({ ok: false, seq: 1, kind: 'auth', reason: 'authorize threw: bug' });
  });

  it('continues a verified chain from its head and state', () => {
    const first = verifyChain(chain.slice(0, 3), ring, joinedOnly);
    if (!first.ok) throw new Error(first.reason);
    const rest = verifyChain(chain.slice(3), ring, joinedOnly, { after: { seq: 3, head: first.head!, state: first.state }, roomId: ROOM });
    expect(rest).toMatchObject({ ok: true, count: 3, head: recordHash(chain[5]!.record) });
    const unlinked = verifyChain(chain.slice(4), ring, joinedOnly, { after: { seq: 4, head: first.head!, state: first.state } });
    expect(unlinked).toMatchObject({ ok: false, seq: 5, kind: 'prev' });
    // The caller's state is copied, not mutated.
    expect(first.state.size).toBe(2);
  });

  it('holds the chain to the room the caller asked for', () => {
    expect(verifyChain(chain, ring, undefined, { roomId: '!other:a.test' })).toMatchObject({ ok: false, seq: 1, kind: 'room' });
  });

  it('StateMap is a plain Map keyed by type NUL state_key', () => {
    const state: StateMap = new Map([[stateKey('room.name', ''), history[0]!]]);
    expect([...state.keys()]).toEqual(['room.name\u0000']);
  });
});

describe('verifyChain: hostile input', () => {
  it.each(HOSTILE_VALUES)('never throws for %s as entries, entry, event, record or key ring', (_name, bad) => {
    // An empty array is an empty chain, which verifies.
    if (!Array.isArray(bad)) expect(verifyChain(bad as never, ring)).toMatchObject({ ok: false });
    expect(verifyChain([bad] as never, ring)).toMatchObject({ ok: false, seq: 1 });
    expect(verifyChain([{ event: bad, record: chain[0]!.record }] as never, ring)).toMatchObject({ ok: false, seq: 1 });
    expect(verifyChain([{ event: chain[0]!.event, record: bad as SeqRecord }], ring)).toMatchObject({ ok: false, seq: 1 });
    expect(verifyChain(chain, bad as never)).toMatchObject({ ok: false, seq: 1 });
    expect(verifyChain(chain, ring, undefined, bad as never)).toBeDefined();
    if (bad !== undefined)
      expect(verifyChain(chain, ring, undefined, { after: bad as never })).toMatchObject({ ok: false, kind: 'malformed' });
    expect(verifyChain(chain, ring, undefined, { after: { seq: 0, head: 'x', state: bad as never } })).toBeDefined();
  });
});

describe('verifyChain with the real auth rules: redactions are judged by the redacted event’s sender', () => {
  const roles = { roles: { everyone: { name: 'everyone', position: 0, permissions: 0b1111 } }, users: {} };
  const base = [
    event('@alice:a.test', 'room.create', { creator: '@alice:a.test', kind: 'room', version: 1 }, { state_key: '' }),
    event('@alice:a.test', 'room.member', { membership: 'join' }, { state_key: '@alice:a.test' }),
    event('@alice:a.test', 'room.roles', roles, { state_key: '' }),
    event('@alice:a.test', 'room.join_rules', { join_rule: 'public' }, { state_key: '' }),
    event('@bob:b.test', 'room.member', { membership: 'join' }, { state_key: '@bob:b.test' }),
  ];
  const alices = event('@alice:a.test', 'room.message', { body: 'from alice' });
  const bobs = event('@bob:b.test', 'room.message', { body: 'from bob' });

  it('accepts bob redacting his own message', async () => {
    const { authorize } = await import('../src/room/index.js');
    const entries = sequence([...base, alices, bobs, event('@bob:b.test', 'room.redaction', { redacts: eventId(bobs) })]);
    expect(verifyChain(entries, ring, authorize)).toMatchObject({ ok: true, count: 8 });
  });

  it('refuses bob redacting alice’s message without MANAGE_MESSAGES', async () => {
    const { authorize } = await import('../src/room/index.js');
    const entries = sequence([...base, alices, bobs, event('@bob:b.test', 'room.redaction', { redacts: eventId(alices) })]);
    expect(verifyChain(entries, ring, authorize)).toMatchObject({ ok: false, seq: 8, kind: 'auth' });
  });
});

describe('verifyChain: MLS epochs (docs/protocol.md, issue 12)', () => {
  // A host that sequenced two commits for one epoch forked the group: participants refuse it.
  const roles = { roles: { everyone: { name: 'everyone', position: 0, permissions: 0b1111 } }, users: {} };
  const base = [
    event('@alice:a.test', 'room.create', { creator: '@alice:a.test', kind: 'room', version: 1 }, { state_key: '' }),
    event('@alice:a.test', 'room.member', { membership: 'join' }, { state_key: '@alice:a.test' }),
    event('@alice:a.test', 'room.roles', roles, { state_key: '' }),
    event('@alice:a.test', 'room.join_rules', { join_rule: 'public' }, { state_key: '' }),
    event('@bob:b.test', 'room.member', { membership: 'join' }, { state_key: '@bob:b.test' }),
    event('@alice:a.test', 'room.encryption', { algorithm: 'mls.rfc9420.cs3' }, { state_key: '' }),
  ];
  const commit = (sender: string, epoch: number, tag: string) => event(sender, 'room.mls.commit', { epoch, commit: tag });

  it('accepts commits that advance the epoch one by one', async () => {
    const { authorize } = await import('../src/room/index.js');
    const entries = sequence([...base, commit('@alice:a.test', 0, 'AA'), commit('@bob:b.test', 1, 'BB'), commit('@bob:b.test', 2, 'CC')]);
    expect(verifyChain(entries, ring, authorize)).toMatchObject({ ok: true, count: 9 });
  });

  it('refuses a second commit for an epoch already won', async () => {
    const { authorize } = await import('../src/room/index.js');
    const entries = sequence([...base, commit('@alice:a.test', 0, 'AA'), commit('@bob:b.test', 0, 'BB')]);
    expect(verifyChain(entries, ring, authorize)).toMatchObject({
      ok: false,
      seq: 8,
      kind: 'auth',
      reason: expect.stringContaining('epoch 1'),
    });
  });

  it('a continuation without a known epoch accepts the first commit it sees, then holds to it', async () => {
    const { authorize } = await import('../src/room/index.js');
    const all = sequence([...base, commit('@alice:a.test', 0, 'AA'), commit('@bob:b.test', 1, 'BB'), commit('@bob:b.test', 1, 'CC')]);
    const upTo = verifyChain(all.slice(0, 7), ring, authorize);
    if (!upTo.ok) throw new Error(upTo.reason);
    const after = { seq: 7, head: upTo.head as string, state: upTo.state };
    expect(verifyChain(all.slice(7, 8), ring, authorize, { after })).toMatchObject({ ok: true });
    expect(verifyChain(all.slice(7), ring, authorize, { after })).toMatchObject({ ok: false, seq: 9, kind: 'auth' });
  });
});
