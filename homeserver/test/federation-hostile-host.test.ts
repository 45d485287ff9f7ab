import { ParleyApiError } from '@parley/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { endless, type HostileRoom, type HostileServer, hold, huge, json, startWithHostile } from './support/hostile-server.js';
import { until } from './support/net.js';
import { ManualClock, type TestServer } from './support/server.js';

type Person = Awaited<ReturnType<typeof signUp>>;

async function signUp(server: TestServer, username: string) {
  const { RoomsApi } = await import('@parley/sdk');
  const client = server.client();
  const session = await client.register({ username, password: `${username} password` });
  return { client, rooms: new RoomsApi(client), userId: session.user_id };
}

/**
 * A hostile room host (the scripted harness, signing validly) against a real participant:
 * pushed entries that open gaps, backfill pages that repeat, withhold or reorder entries. The
 * participant must stay bounded — a count of requests, not a time, is what the tests assert.
 */
describe('federation: a hostile host against a participant', () => {
  let evil: HostileServer;
  let hs: TestServer;
  let bob: Person;
  // Per-room backfill rates and the per-transaction time budget run on this clock; it moves only when a test moves it.
  const clock = new ManualClock();

  const seqOn = async (roomId: string) =>
    Number((await hs.services.db('rooms').where({ room_id: roomId }).first('current_seq'))?.current_seq ?? 0);

  /** A room on the hostile host that bob has joined honestly, with `messages` messages after his join. */
  const joinedRoom = async (messages = 0): Promise<HostileRoom> => {
    const room = evil.createRoom();
    await bob.rooms.join(room.id);
    for (let i = 0; i < messages; i++) room.message(`m${i}`);
    return room;
  };

  beforeAll(async () => {
    ({ hostile: evil, hs } = await startWithHostile('evil.test', 'hs2.test', clock));
    bob = await signUp(hs, 'bob');
  }, 60_000);
  afterAll(async () => {
    await evil?.close();
    await hs?.close();
  });

  it('joins an honest room on the harness and takes pushed entries (the harness itself works)', async () => {
    const room = await joinedRoom();
    expect(await seqOn(room.id)).toBe(6);
    const pushed = room.message('hello');
    const results = await evil.push('hs2.test', [pushed]);
    expect(Object.values(results)).toEqual([{}]);
    expect(await seqOn(room.id)).toBe(7);
    // A gap is backfilled from the host.
    const [a, b, c] = [room.message('a'), room.message('b'), room.message('c')];
    expect(Object.values(await evil.push('hs2.test', [c]))).toEqual([{}]);
    expect(await seqOn(room.id)).toBe(c.record.seq);
    expect(a && b).toBeTruthy();
  });

  it('security: H2 a host answering every backfill page with the same old entry cannot keep a transaction looping', async () => {
    const room = await joinedRoom(40);
    const stale = room.entries[0];
    // Give up after 300 requests so that a looping participant ends (and this test fails) instead of hanging.
    evil.script('GET', /\/events\?/, () =>
      evil.count('GET', /\/events\?/) > 300 ? json({ error: { code: 'X' } }, 500) : json({ entries: [stale] }),
    );
    const before = evil.count('GET', /\/events\?/);
    const answer = await evil.push('hs2.test', [room.head]).catch((err: Error) => err);
    const pages = evil.count('GET', /\/events\?/) - before;
    evil.reset();
    expect(pages).toBeLessThanOrEqual(1);
    expect(answer).not.toBeInstanceOf(Error);
    expect(Object.values(answer as Record<string, { error?: string }>)[0]?.error).toMatch(/backfill/);
    expect(await seqOn(room.id)).toBe(6);
  });

  const EVENTS = /\/events\?/;
  const pagesDuring = async <T>(fn: () => Promise<T>): Promise<{ pages: number; answer: T | Error }> => {
    const before = evil.count('GET', EVENTS);
    const answer = await fn().catch((err: Error) => err);
    return { pages: evil.count('GET', EVENTS) - before, answer };
  };
  const errorOf = (answer: unknown, k = 0) => Object.values(answer as Record<string, { error?: string }>)[k]?.error;

  it('security: H2 a pushed entry that does not verify starts no backfill, however far ahead its seq', async () => {
    const room = await joinedRoom(5);
    const head = room.head as (typeof room.entries)[number];
    const tampered = { ...head, event: { ...head.event, content: { body: 'tampered' } } };
    const { pages, answer } = await pagesDuring(() => evil.push('hs2.test', [tampered]));
    expect(pages).toBe(0);
    expect(errorOf(answer)).toMatch(/record names another event|hash/);
    expect(await seqOn(room.id)).toBe(6);
  });

  it('security: H2 backfill pages that withhold, flood or start elsewhere are refused, and the room pauses its backfill', async () => {
    for (const [name, page] of [
      ['withholds', () => json({ entries: [] })],
      ['floods', (r: HostileRoom) => json({ entries: r.range(7, 50) })],
      ['skips ahead', (r: HostileRoom) => json({ entries: r.range(8, 3) })],
    ] as const) {
      const room = await joinedRoom(10);
      evil.script('GET', EVENTS, () => page(room));
      const first = await pagesDuring(() => evil.push('hs2.test', [room.head]));
      expect(first.pages, name).toBe(1);
      expect(errorOf(first.answer), name).toMatch(/backfill from evil\.test failed/);
      // The next transaction with the same gap does not ask again: the room's backfill is paused.
      const again = await pagesDuring(() => evil.push('hs2.test', [room.head]));
      expect(again.pages, name).toBe(0);
      expect(errorOf(again.answer), name).toMatch(/answered a backfill badly/);
      evil.reset();
      expect(await seqOn(room.id), name).toBe(6);
    }
  });

  it('security: H2 one transaction fetches at most 10 pages, and a room at most its rate over many transactions', async () => {
    const room = await joinedRoom(60);
    // Honest but stingy: one entry per page, so the gap of 59 cannot be filled in one transaction.
    evil.script('GET', EVENTS, (req) => {
      const from = Number(new URL(req.path, 'https://x').searchParams.get('from_seq'));
      return json({ entries: room.range(from, 1) });
    });
    const first = await pagesDuring(() => evil.push('hs2.test', [room.head]));
    expect(first.pages).toBe(10);
    expect(errorOf(first.answer)).toMatch(/used its backfill pages/);
    expect(await seqOn(room.id)).toBe(16);
    const second = await pagesDuring(() => evil.push('hs2.test', [room.head]));
    expect(second.pages).toBe(10);
    expect(await seqOn(room.id)).toBe(26);
    // The room's burst (20 pages) is spent; the clock has not moved, so no page is refilled.
    const third = await pagesDuring(() => evil.push('hs2.test', [room.head]));
    expect(third.pages).toBe(0);
    expect(errorOf(third.answer)).toMatch(/used its backfill rate/);
    // A minute later the room has 10 pages again, and progress is kept.
    clock.advance(60_000);
    const fourth = await pagesDuring(() => evil.push('hs2.test', [room.head]));
    expect(fourth.pages).toBe(10);
    expect(await seqOn(room.id)).toBe(36);
    evil.reset();
  });

  it('security: H2 a transaction whose backfill pages are slow stops when its time is spent', async () => {
    const room = await joinedRoom(30);
    // Each page takes 7 s of the participant's clock: the 20 s allowance covers three.
    evil.script('GET', EVENTS, (req) => {
      clock.advance(7_000);
      const from = Number(new URL(req.path, 'https://x').searchParams.get('from_seq'));
      return json({ entries: room.range(from, 1) });
    });
    const other = await joinedRoom();
    const { pages, answer } = await pagesDuring(() => evil.push('hs2.test', [room.head, other.message('late')]));
    evil.reset();
    expect(pages).toBe(3);
    expect(errorOf(answer)).toMatch(/used its backfill time/);
    expect(await seqOn(room.id)).toBe(9);
    // The rest of the transaction is answered without being read.
    expect(errorOf(answer, 1)).toMatch(/not processed: this transaction used its time/);
    expect(await seqOn(other.id)).toBe(6);
  });

  it('security: H2 one transaction with gaps in 12 rooms costs at most 10 backfill pages in all', async () => {
    const rooms: HostileRoom[] = [];
    for (let k = 0; k < 12; k++) rooms.push(await joinedRoom(3));
    evil.script('GET', EVENTS, (req) => {
      const m = /rooms\/([^/]+)\/events\?from_seq=(\d+)/.exec(req.path);
      const room = evil.rooms.get(decodeURIComponent(m?.[1] ?? '')) as HostileRoom;
      return json({ entries: room.range(Number(m?.[2]), 1) });
    });
    const { pages, answer } = await pagesDuring(() =>
      evil.push(
        'hs2.test',
        rooms.map((r) => r.head),
      ),
    );
    evil.reset();
    expect(pages).toBe(10);
    const errors = Object.values(answer as Record<string, { error?: string }>).filter((r) => r.error);
    expect(errors.length).toBeGreaterThan(0);
    expect(errors.every((e) => /backfill/.test(e.error ?? ''))).toBe(true);
  });

  const JOIN = /\/join$/;

  it('security: M6 a join answered with an endless body is cut off at the join cap, not buffered', async () => {
    const room = evil.createRoom();
    evil.script('POST', JOIN, () => endless());
    const sentBefore = evil.bytesSent;
    const err = await bob.rooms.join(room.id).catch((e: ParleyApiError) => e);
    evil.reset();
    expect(err).toBeInstanceOf(ParleyApiError);
    expect((err as ParleyApiError).status).toBe(502);
    expect((err as ParleyApiError).message).toMatch(/more than \d+ bytes/);
    // The participant stopped reading at its 32 MiB cap (plus what sat in socket buffers).
    expect(evil.bytesSent - sentBefore).toBeLessThan(40 * 1024 * 1024);
    expect(await seqOn(room.id)).toBe(0);
  });

  it('security: M6 at most 3 remote joins run at once; the next is a 503 with Retry-After', async () => {
    const rooms = [evil.createRoom(), evil.createRoom(), evil.createRoom(), evil.createRoom()];
    evil.script('POST', JOIN, () => hold());
    const held = rooms.slice(0, 3).map((r) => bob.rooms.join(r.id).catch((e: ParleyApiError) => e));
    await until(() => evil.heldCount === 3);
    const res = await fetch(`${hs.url}/api/v1/rooms/${encodeURIComponent((rooms[3] as HostileRoom).id)}/join`, {
      method: 'POST',
      headers: { authorization: `Bearer ${bob.client.session?.access_token}`, 'content-type': 'application/json' },
      body: '{}',
    });
    expect(res.status).toBe(503);
    expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(evil.count('POST', JOIN)).toBeGreaterThanOrEqual(3);
    evil.release();
    for (const outcome of await Promise.all(held)) expect((outcome as ParleyApiError).status).toBe(502);
    evil.reset();
    // The slots are free again.
    await bob.rooms.join((rooms[3] as HostileRoom).id);
    expect(await seqOn((rooms[3] as HostileRoom).id)).toBe(6);
  });

  it('security: H2 a backfill page is cut off at 8 MiB, not read whole', async () => {
    const room = await joinedRoom(3);
    evil.script('GET', EVENTS, () => huge(64 * 1024 * 1024));
    const sentBefore = evil.bytesSent;
    const { pages, answer } = await pagesDuring(() => evil.push('hs2.test', [room.head]));
    evil.reset();
    expect(pages).toBe(1);
    expect(errorOf(answer)).toMatch(/backfill from evil\.test failed: page at seq 7: .*8388608 bytes/);
    expect(evil.bytesSent - sentBefore).toBeLessThan(16 * 1024 * 1024);
  });

  it('security: H2 at most 2 transactions of one origin are processed at once; the third is a 429, and not recorded', async () => {
    const rooms = [await joinedRoom(3), await joinedRoom(3), await joinedRoom(3)];
    evil.script('GET', EVENTS, () => hold());
    const running = rooms.slice(0, 2).map((r) => evil.push('hs2.test', [r.head]).catch((e: Error) => e));
    await until(() => evil.heldCount === 2);
    const third = await evil.push('hs2.test', [(rooms[2] as HostileRoom).head], [], 'txn-third').catch((e: { status?: number }) => e);
    expect((third as { status?: number }).status).toBe(429);
    evil.release();
    await Promise.all(running);
    evil.reset();
    clock.advance(61_000); // past the pause the held (then failed) backfills started
    // Once those are done the same entry is taken: the refused transaction was not recorded as seen.
    expect(Object.values(await evil.push('hs2.test', [(rooms[2] as HostileRoom).head], [], 'txn-third'))).toEqual([{}]);
  });
});
