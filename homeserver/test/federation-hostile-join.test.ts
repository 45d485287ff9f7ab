import { eventId, recordHash } from '@parley/federation/events';
import type { RoomEvent } from '@parley/schemas';
import { ParleyApiError, RoomsApi } from '@parley/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type HostileEntry, type HostileRoom, type HostileServer, json, startWithHostile } from './support/hostile-server.js';
import { ManualClock, type TestServer } from './support/server.js';

/**
 * What a participant refuses from a hostile host at join and when paging back (issue 10,
 * test audit): forged state snapshots, bad chains, and broken downward backfill. Every entry
 * the harness sends carries valid signatures unless the case is about signatures, so each
 * case is caught only by the check it names (each was confirmed by deleting that check).
 */
describe('federation: a hostile host at join and below a snapshot', () => {
  let evil: HostileServer;
  let hs: TestServer;
  let bob: RoomsApi;
  // The room's backfill pauses after a bad answer and has a page rate: tests move this clock past them.
  const clock = new ManualClock();
  const JOIN = /\/join$/;
  const EVENTS = /\/events\?/;

  const stored = async (roomId: string) =>
    (await hs.services.db('events').where({ room_id: roomId }).count<{ n: string }[]>('* as n'))[0]?.n;
  const joinError = async (roomId: string) => {
    const err = await bob.join(roomId).catch((e: ParleyApiError) => e);
    expect(err).toBeInstanceOf(ParleyApiError);
    return err as ParleyApiError;
  };

  /** The state a host would send with `anchor`: the latest state entry per key up to and including it. */
  const stateUpTo = (room: HostileRoom, anchorSeq: number): HostileEntry[] => {
    const latest = new Map<string, HostileEntry>();
    for (const e of room.entries.slice(0, anchorSeq))
      if (e.event.state_key !== undefined) latest.set(`${e.event.type}|${e.event.state_key}`, e);
    return [...latest.values()];
  };
  /** An honest snapshot answer with the recent part starting after `anchorSeq` (the join included). */
  const snapshotOf = (room: HostileRoom, anchorSeq: number) => ({
    snapshot: { state: stateUpTo(room, anchorSeq), anchor: room.entries[anchorSeq - 1] as HostileEntry },
    entries: room.entries.slice(anchorSeq),
  });
  const withContent = (e: HostileEntry, content: Record<string, unknown>): HostileEntry => ({ ...e, event: { ...e.event, content } });
  /** A room: create…visibility (1–5), name 'Old' (6), 10 messages (7–16), name 'New' (17), 3 messages (18–20). */
  const bigRoom = () => {
    const room = evil.createRoom();
    room.append(room.sign('room.name', { name: 'Old' }, { stateKey: '' }));
    for (let i = 0; i < 10; i++) room.message(`old ${i}`);
    room.append(room.sign('room.name', { name: 'New' }, { stateKey: '' }));
    for (let i = 0; i < 3; i++) room.message(`recent ${i}`);
    return room;
  };
  /** Scripts the join of `room` to sequence bob's join, then answer `answer(room)`. */
  const joinAnswers = (room: HostileRoom, answer: (room: HostileRoom) => unknown) =>
    evil.script('POST', JOIN, (req) => {
      room.append((req.body as { event: RoomEvent }).event);
      return json(answer(room));
    });

  beforeAll(async () => {
    ({ hostile: evil, hs } = await startWithHostile('evil.test', 'hs2.test', clock));
    const client = hs.client();
    await client.register({ username: 'bob', password: 'bob password' });
    bob = new RoomsApi(client);
  }, 60_000);
  afterAll(async () => {
    await evil?.close();
    await hs?.close();
  });

  describe('refuses a forged state snapshot', () => {
    const forgeries: Array<[string, (room: HostileRoom) => unknown, RegExp]> = [
      [
        'a state event changed after it was signed',
        (r) => {
          const a = snapshotOf(r, 17);
          a.snapshot.state = a.snapshot.state.map((e) =>
            e.event.type === 'room.join_rules' ? withContent(e, { join_rule: 'invite' }) : e,
          );
          return a;
        },
        /record names another event/,
      ],
      [
        'an older value of a key next to the current one',
        (r) => {
          const a = snapshotOf(r, 17);
          a.snapshot.state.push(r.entries[5] as HostileEntry); // name 'Old', superseded at 17
          return a;
        },
        /two state entries/,
      ],
      [
        'the anchor changes a key whose older value the snapshot holds instead',
        (r) => {
          const a = snapshotOf(r, 17);
          a.snapshot.state = a.snapshot.state.map((e) => (e.event.type === 'room.name' ? (r.entries[5] as HostileEntry) : e));
          return a;
        },
        /anchor is a state event/,
      ],
      [
        'a state entry sequenced after the anchor',
        (r) => {
          const a = snapshotOf(r, 12);
          a.snapshot.state = a.snapshot.state.map((e) => (e.event.type === 'room.name' ? (r.entries[16] as HostileEntry) : e));
          return a;
        },
        /after the anchor/,
      ],
      [
        'a message passed off as state',
        (r) => {
          const a = snapshotOf(r, 17);
          a.snapshot.state.push(r.entries[8] as HostileEntry);
          return a;
        },
        /not a state event/,
      ],
      [
        'no room.create',
        (r) => {
          const a = snapshotOf(r, 17);
          a.snapshot.state = a.snapshot.state.filter((e) => e.event.type !== 'room.create');
          return a;
        },
        /room\.create/,
      ],
      [
        'recent entries that do not continue from the anchor',
        (r) => {
          const a = snapshotOf(r, 17);
          a.entries[1] = withContent(a.entries[1] as HostileEntry, { body: 'rewritten' });
          return a;
        },
        /recent entries at seq 19/,
      ],
    ];
    for (const [name, forge, reason] of forgeries) {
      it(`security: snapshot — ${name}`, async () => {
        const room = bigRoom();
        joinAnswers(room, forge);
        const err = await joinError(room.id);
        evil.reset();
        expect(err.status).toBe(502);
        expect(err.message).toMatch(/state snapshot from evil\.test does not verify/);
        expect(err.message).toMatch(reason);
        expect(Number(await stored(room.id))).toBe(0);
      });
    }

    it('…and takes the honest snapshot of the same room', async () => {
      const room = bigRoom();
      joinAnswers(room, (r) => snapshotOf(r, 17));
      await bob.join(room.id);
      evil.reset();
      expect((await hs.services.db('rooms').where({ room_id: room.id }).first('current_seq'))?.current_seq).toBe(21);
    });
  });

  describe('refuses a bad chain at join', () => {
    const forgeries: Array<[string, (room: HostileRoom) => HostileEntry[], RegExp]> = [
      [
        'an event changed after it was signed',
        (r) => r.entries.map((e, i) => (i === 8 ? withContent(e, { body: 'rewritten' }) : e)),
        /seq 9: content hash/,
      ],
      [
        'a validly signed record that does not link to the one before it',
        (r) =>
          r.entries.map((e, i) =>
            i === 8 ? { ...e, record: r.record(9, recordHash((r.entries[2] as HostileEntry).record), e.record.event_id) } : e,
          ),
        /seq 9: record links to/,
      ],
      [
        'two entries swapped',
        (r) => r.entries.map((e, i) => (i === 8 ? (r.entries[9] as HostileEntry) : i === 9 ? (r.entries[8] as HostileEntry) : e)),
        /seq 9: expected seq 9/,
      ],
      ['an entry missing', (r) => r.entries.filter((_, i) => i !== 8), /seq 9: expected seq 9/],
      [
        'a message from someone who never joined, sequenced by the host',
        (r) => {
          const out = [...r.entries];
          const event = r.sign('room.message', { body: 'gatecrasher' }, { sender: '@eve:evil.test' });
          out.push({ event, record: r.record(out.length + 1, recordHash((out.at(-1) as HostileEntry).record), eventId(event)) });
          return out;
        },
        /refused|not joined|member/,
      ],
    ];
    for (const [name, forge, reason] of forgeries) {
      it(`security: chain at join — ${name}`, async () => {
        const room = evil.createRoom();
        for (let i = 0; i < 6; i++) room.message(`m ${i}`);
        joinAnswers(room, (r) => ({ entries: forge(r) }));
        const err = await joinError(room.id);
        evil.reset();
        expect(err.status).toBe(502);
        expect(err.message).toMatch(/the chain from evil\.test does not verify/);
        expect(err.message).toMatch(reason);
        expect(Number(await stored(room.id))).toBe(0);
      });
    }
  });

  describe('refuses broken backfill below a snapshot', () => {
    let room: HostileRoom;
    const older = async () => {
      const err = await bob.messages(room.id, { dir: 'b', limit: 30 }).catch((e: ParleyApiError) => e);
      return err;
    };
    /** Answers backfill with the genuine range, passed through `forge`. */
    const backfillAnswers = (forge: (entries: HostileEntry[]) => HostileEntry[]) =>
      evil.script('GET', EVENTS, (req) => {
        const q = new URL(req.path, 'https://x').searchParams;
        return json({ entries: forge(room.range(Number(q.get('from_seq')), Number(q.get('limit')))) });
      });

    beforeAll(async () => {
      room = bigRoom();
      joinAnswers(room, (r) => snapshotOf(r, 17));
      await bob.join(room.id);
      evil.reset();
    });

    const forgeries: Array<[string, (entries: HostileEntry[]) => HostileEntry[], RegExp]> = [
      [
        'an old event changed after it was signed',
        (es) => es.map((e) => (e.record.seq === 10 ? withContent(e, { body: 'rewritten' }) : e)),
        /seq 10: event/,
      ],
      [
        'another validly signed entry in place of the one the chain commits to',
        (es) =>
          es.map((e) => {
            if (e.record.seq !== 10) return e;
            const event = room.sign('room.message', { body: 'alternative history' });
            return { event, record: room.record(10, e.record.prev, eventId(event)) };
          }),
        /seq 10: its hash is not the prev/,
      ],
      ['an entry missing', (es) => es.filter((e) => e.record.seq !== 10), /expected seq 10/],
      ['entries from a later seq than asked', (es) => es.slice(3), /stopped at seq|expected seq/],
    ];
    for (const [name, forge, reason] of forgeries) {
      it(`security: downward backfill — ${name}`, async () => {
        clock.advance(61_000); // past the pause the previous bad answer started
        backfillAnswers(forge);
        const err = await older();
        evil.reset();
        expect(err).toBeInstanceOf(ParleyApiError);
        expect((err as ParleyApiError).status).toBe(502);
        expect((err as ParleyApiError).message).toMatch(reason);
        const floor = await hs.services.db('rooms').where({ room_id: room.id }).first('history_from');
        expect(floor?.history_from).toBe(17);
        expect(
          await hs.services.db('events').where({ room_id: room.id, type: 'room.message' }).where('seq', '<', 17).first(),
        ).toBeUndefined();
      });
    }

    it('…and takes the honest older history', async () => {
      clock.advance(61_000);
      const page = await bob.messages(room.id, { dir: 'b', limit: 30 });
      const bodies = page.chunk.filter((e) => e.type === 'room.message').map((e) => e.content.body);
      expect(bodies).toContain('old 0');
      expect(bodies).not.toContain('rewritten');
    });
  });

  it('security: H2 (sweep) a reader paging down through history it may not see costs the host a bounded amount', async () => {
    // 2,500 messages before bob joins, none of which he may see (joined-only history): paging
    // back asks for older history, 100 entries at a time, until seq 1.
    const room = evil.createRoom({ historyVisibility: 'joined' });
    for (let i = 0; i < 2_500; i++) room.message(`hidden ${i}`);
    joinAnswers(room, (r) => snapshotOf(r, r.entries.length - 1));
    await bob.join(room.id);
    evil.reset();
    evil.script('GET', EVENTS, (req) => {
      const q = new URL(req.path, 'https://x').searchParams;
      const entries = room.range(Number(q.get('from_seq')), Number(q.get('limit')));
      return json({ entries: entries.map((e) => ({ ...e, meta: { visibility: 'joined', redacted_by: null } })) });
    });
    const perCall: number[] = [];
    let from: string | undefined;
    let refused: ParleyApiError | undefined;
    for (let call = 0; call < 30 && !refused; call++) {
      const before = evil.count('GET', EVENTS);
      try {
        const page = await bob.messages(room.id, { dir: 'b', limit: 10, ...(from ? { from } : {}) });
        expect(page.end).toBeDefined(); // cut short, not the end of the room
        from = page.end;
      } catch (err) {
        refused = err as ParleyApiError;
      }
      perCall.push(evil.count('GET', EVENTS) - before);
    }
    evil.reset();
    // Each request fetched at most 3 pages; the room's 20-page burst then ran out (503, Retry-After).
    expect(Math.max(...perCall)).toBeLessThanOrEqual(3);
    expect(perCall.reduce((a, b) => a + b, 0)).toBe(20);
    expect(refused?.status).toBe(503);
    expect(refused?.retryAfterMs).toBeGreaterThan(0);
  });
});
