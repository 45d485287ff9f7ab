import type { RoomEvent } from '@parley/schemas';
import { ParleyApiError, RoomsApi } from '@parley/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type HostileEntry, type HostileRoom, type HostileServer, json, startWithHostile } from './support/hostile-server.js';
import type { TestServer } from './support/server.js';

/**
 * Snapshot joins large enough that their signatures are checked by worker threads as well as
 * the event loop (VerifyPool: from 512 entries), and whose rows go into the database while
 * they are checked: a forged signature anywhere is still refused, the first one in order is
 * the one named, and nothing of a refused snapshot stays stored.
 */
describe('federation: joining a large room from a snapshot', () => {
  let evil: HostileServer;
  let hs: TestServer;
  let bob: RoomsApi;
  const MEMBERS = 700;

  const stored = async (table: string, roomId: string) =>
    Number((await hs.services.db(table).where({ room_id: roomId }).count<{ n: string }[]>('* as n'))[0]?.n);

  // Names with what COPY's text format escapes (tab, newline, CR, backslash) and what JSON does.
  const nameOf = (i: number) => (i % 100 === 7 ? `u${i}\ttab\nline\r\\back "quoted" \\N é 🎉` : `u${i}`);

  /** create…visibility (1–5), MEMBERS joins (6…), then 3 messages; the anchor is the last join. */
  const largeRoom = () => {
    const room = evil.createRoom();
    for (let i = 0; i < MEMBERS; i++) {
      const user = `@u${i}:${evil.name}`;
      room.append(room.sign('room.member', { membership: 'join', displayname: nameOf(i) }, { stateKey: user, sender: user }));
    }
    for (let i = 0; i < 3; i++) room.message(`recent ${i}`);
    return room;
  };
  const anchorSeq = 5 + MEMBERS;
  const snapshotOf = (room: HostileRoom) => {
    const latest = new Map<string, HostileEntry>();
    for (const e of room.entries.slice(0, anchorSeq))
      if (e.event.state_key !== undefined) latest.set(`${e.event.type}|${e.event.state_key}`, e);
    return { snapshot: { state: [...latest.values()], anchor: room.entries[anchorSeq - 1] }, entries: room.entries.slice(anchorSeq) };
  };
  /** The entry's event signed by someone else's key: the record still names it (its ID covers no signature). */
  const forged = (room: HostileRoom, e: HostileEntry): HostileEntry => {
    const other = room.entries[1] as HostileEntry;
    return { ...e, event: { ...e.event, signatures: other.event.signatures } };
  };
  const joinAnswers = (room: HostileRoom, answer: (room: HostileRoom) => unknown) =>
    evil.script('POST', /\/join$/, (req) => {
      room.append((req.body as { event: RoomEvent }).event);
      return json(answer(room));
    });

  beforeAll(async () => {
    ({ hostile: evil, hs } = await startWithHostile('evil.test', 'hs2.test'));
    const client = hs.client();
    await client.register({ username: 'bob', password: 'bob password' });
    bob = new RoomsApi(client);
  }, 60_000);
  afterAll(async () => {
    await evil?.close();
    await hs?.close();
  });

  it('security: refuses a large snapshot with forged signatures, names the first, and keeps none of it', async () => {
    const room = largeRoom();
    joinAnswers(room, (r) => {
      const answer = snapshotOf(r);
      // Two forgeries far apart: the later one lands in a chunk checked before the earlier one's.
      answer.snapshot.state = answer.snapshot.state.map((e, i) => (i === 301 || i === 650 ? forged(r, e) : e));
      return answer;
    });
    const err = (await bob.join(room.id).catch((e: ParleyApiError) => e)) as ParleyApiError;
    evil.reset();
    expect(err).toBeInstanceOf(ParleyApiError);
    expect(err.status).toBe(502);
    expect(err.message).toMatch(/state snapshot from evil\.test does not verify/);
    const seq = (snapshotOf(room).snapshot.state[301] as HostileEntry).record.seq;
    expect(err.message).toMatch(new RegExp(`seq ${seq}: event: bad signature`));
    for (const table of ['events', 'room_state', 'memberships', 'membership_log']) expect(await stored(table, room.id)).toBe(0);
    expect(await hs.services.db('rooms').where({ room_id: room.id }).first()).toBeUndefined();
  });

  it('…and joins the honest snapshot of a room that size, with all its state and members stored', async () => {
    const room = largeRoom();
    joinAnswers(room, snapshotOf);
    await bob.join(room.id);
    evil.reset();
    // The state (5 + MEMBERS entries, the anchor among them), the 3 messages and bob's join.
    expect(await stored('events', room.id)).toBe(5 + MEMBERS + 3 + 1);
    expect(await stored('room_state', room.id)).toBe(5 + MEMBERS + 1);
    expect(await stored('memberships', room.id)).toBe(1 + MEMBERS + 1);
    // Every stored event is the one signed, byte for byte where it matters: the escaped names came through.
    const names = await hs.services
      .db('events')
      .where({ room_id: room.id, type: 'room.member' })
      .select<{ state_key: string; name: string }[]>('state_key', hs.services.db.raw("event->'content'->>'displayname' as name"));
    const byUser = new Map(names.map((r) => [r.state_key, r.name]));
    for (let i = 0; i < MEMBERS; i++) expect(byUser.get(`@u${i}:${evil.name}`)).toBe(nameOf(i));
    const page = await bob.messages(room.id, { dir: 'b', limit: 5 });
    expect(page.chunk.map((e) => e.content.body).filter(Boolean)).toEqual(['recent 2', 'recent 1', 'recent 0']);
  });
});
