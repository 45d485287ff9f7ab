import type { ClientEvent, Frame, SyncResponse } from '@parley/schemas';
import { type ParleyClient, RoomsApi } from '@parley/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from './support/server.js';
import { bodyOf, openStream } from './support/stream-client.js';

interface Person {
  client: ParleyClient;
  rooms: RoomsApi;
  id: string;
  token: () => string;
}

/**
 * Replay (WebSocket `identify {since}` and long-poll `/sync?since=`) gives each user exactly
 * the room events `/messages` shows them, never history their membership hides.
 */
describe('stream visibility', () => {
  let server: TestServer;
  let alice: Person;

  async function person(name: string): Promise<Person> {
    const client = server.client();
    await client.register({ username: name, password: `${name} password` });
    return { client, rooms: new RoomsApi(client), id: `@${name}:hs1.test`, token: () => client.session?.access_token as string };
  }

  /** Every frame the WebSocket replays from `since`, up to `ready`. */
  async function replayWs(p: Person, since: number): Promise<Frame[]> {
    const s = openStream(server.url, p.token(), since);
    const ready = await s.ready;
    s.close();
    return s.frames.filter((f) => f.position <= ready.position);
  }

  /** Every frame long-poll sync answers from `since` up to the edge (no waiting). */
  async function replayPoll(p: Person, since: number): Promise<Frame[]> {
    const out: Frame[] = [];
    let at = since;
    for (let i = 0; i < 100; i++) {
      const res = await p.client.request<SyncResponse>('GET', `/api/v1/sync?since=${at}&timeout=0`);
      out.push(...res.frames);
      if (res.next === at) return out;
      at = res.next;
    }
    throw new Error('long-poll never reached the edge');
  }

  /** The event IDs `/messages` shows `p` in `roomId`, whole history. */
  async function messagesIds(p: Person, roomId: string): Promise<Set<string>> {
    const ids = new Set<string>();
    let from: string | undefined;
    for (let i = 0; i < 50; i++) {
      const page = await p.rooms.messages(roomId, { dir: 'f', limit: 100, ...(from ? { from } : {}) });
      for (const e of page.chunk) ids.add(e.event_id);
      if (!page.end) return ids;
      from = page.end;
    }
    throw new Error('messages never ended');
  }

  function roomEvents(frames: Frame[], roomId: string): ClientEvent[] {
    return frames.flatMap((f) => (f.kind === 'event' && f.data.event.room_id === roomId ? [f.data.event] : []));
  }

  /** What replay showed `p` in the room is what /messages shows, plus their own membership events. */
  async function expectOnlyVisible(p: Person, roomId: string, frames: Frame[]): Promise<void> {
    const allowed = await messagesIds(p, roomId);
    const extra = roomEvents(frames, roomId).filter((e) => !allowed.has(e.event_id) && !(e.type === 'room.member' && e.state_key === p.id));
    expect(extra.map((e) => `${e.type} ${JSON.stringify(e.content).slice(0, 60)}`)).toEqual([]);
  }

  /** Stream position just after the newest event of `roomId` that `p` can see. */
  async function positionNow(p: Person): Promise<number> {
    const s = openStream(server.url, p.token());
    const { position } = await s.ready;
    s.close();
    return position;
  }

  beforeAll(async () => {
    server = await startTestServer();
    alice = await person('alice');
  });
  afterAll(() => server?.close());

  it('security: H1 a user who joined a joined-visibility room late replays nothing from before the join', async () => {
    const bob = await person('bob');
    const { room_id: roomId } = await alice.rooms.create({ visibility: 'public', name: 'Late', history_visibility: 'joined' });
    const { event_id: early } = await alice.rooms.sendText(roomId, 'before bob 1');
    await alice.rooms.sendText(roomId, 'before bob 2');
    await alice.rooms.markRead(roomId, early);
    await alice.client.request('PUT', `/api/v1/rooms/${encodeURIComponent(roomId)}/typing`, { typing: true });
    await bob.rooms.join(roomId);
    await alice.rooms.sendText(roomId, 'after bob');

    for (const [how, frames] of [
      ['websocket', await replayWs(bob, 0)],
      ['long-poll', await replayPoll(bob, 0)],
    ] as const) {
      const bodies = roomEvents(frames, roomId).map((e) => e.content.body);
      expect(bodies, how).toContain('after bob');
      expect(bodies, how).not.toContain('before bob 1');
      expect(bodies, how).not.toContain('before bob 2');
      await expectOnlyVisible(bob, roomId, frames);
      // Nor the ephemeral traces of that history: receipts and typing from before he joined.
      const join = roomEvents(frames, roomId).find((e) => e.type === 'room.member' && e.state_key === bob.id) as ClientEvent;
      const joinFrame = frames.find((f) => f.kind === 'event' && f.data.event.event_id === join.event_id) as Frame;
      const before = frames.filter(
        (f) => (f.kind === 'receipt' || f.kind === 'typing') && f.data.room_id === roomId && f.position < joinFrame.position,
      );
      expect(before, how).toEqual([]);
    }
  });

  it('security: H1 a user who left and rejoined replays nothing from while they were away', async () => {
    const carol = await person('carol');
    const { room_id: roomId } = await alice.rooms.create({ visibility: 'public', name: 'Away', history_visibility: 'joined' });
    await alice.rooms.sendText(roomId, 'before carol');
    await carol.rooms.join(roomId);
    await alice.rooms.sendText(roomId, 'with carol');
    await carol.rooms.leave(roomId);
    const left = await positionNow(carol);
    await alice.rooms.sendText(roomId, 'while carol was away');
    await carol.rooms.join(roomId);
    await alice.rooms.sendText(roomId, 'carol is back');

    for (const since of [0, left]) {
      for (const [how, frames] of [
        ['websocket', await replayWs(carol, since)],
        ['long-poll', await replayPoll(carol, since)],
      ] as const) {
        const bodies = roomEvents(frames, roomId).map((e) => e.content.body);
        expect(bodies, `${how} from ${since}`).toContain('carol is back');
        expect(bodies, `${how} from ${since}`).not.toContain('while carol was away');
        expect(bodies, `${how} from ${since}`).not.toContain('before carol');
        await expectOnlyVisible(carol, roomId, frames);
      }
    }
  });

  it('security: H1 a banned user replays and receives nothing after the ban, nor while banned once back', async () => {
    const dave = await person('dave');
    const { room_id: roomId } = await alice.rooms.create({ visibility: 'public', name: 'Strict', history_visibility: 'joined' });
    await dave.rooms.join(roomId);
    await alice.rooms.sendText(roomId, 'with dave');
    const live = openStream(server.url, dave.token());
    await live.ready;
    await alice.rooms.ban(roomId, dave.id);
    const banned = await positionNow(dave);
    const { event_id: secret } = await alice.rooms.sendText(roomId, 'after the ban');
    await alice.rooms.markRead(roomId, secret);

    // While banned: replay from before the ban (both ways) and the live socket stop at the ban.
    for (const [how, frames] of [
      ['websocket', await replayWs(dave, 0)],
      ['long-poll', await replayPoll(dave, 0)],
      ['websocket from the ban', await replayWs(dave, banned)],
    ] as const) {
      expect(
        roomEvents(frames, roomId).map((e) => e.content.body),
        how,
      ).not.toContain('after the ban');
      await expectOnlyVisible(dave, roomId, frames);
    }
    await alice.rooms.sendText(roomId, 'marker for dave');
    await alice.rooms.unban(roomId, dave.id);
    await live.waitFor((f) => f.kind === 'event' && f.data.event.type === 'room.member' && f.data.event.content.membership === 'leave');
    expect(live.frames.map(bodyOf)).not.toContain('after the ban');
    expect(live.frames.filter((f) => f.kind === 'receipt' && f.data.event_id === secret)).toEqual([]);
    live.close();

    // Unbanned and back: the time he was banned stays hidden, from any position.
    await dave.rooms.join(roomId);
    await alice.rooms.sendText(roomId, 'dave is back');
    for (const since of [0, banned]) {
      for (const [how, frames] of [
        ['websocket', await replayWs(dave, since)],
        ['long-poll', await replayPoll(dave, since)],
      ] as const) {
        const bodies = roomEvents(frames, roomId).map((e) => e.content.body);
        expect(bodies, `${how} from ${since}`).toContain('dave is back');
        expect(bodies, `${how} from ${since}`).not.toContain('after the ban');
        expect(bodies, `${how} from ${since}`).not.toContain('marker for dave');
        expect(
          frames.filter((f) => f.kind === 'receipt' && f.data.event_id === secret),
          `${how} from ${since}`,
        ).toEqual([]);
        await expectOnlyVisible(dave, roomId, frames);
      }
    }
  });

  it('security: L11 presence is shared only with users who share a room (GET and stream)', async () => {
    const frank = await person('frank');
    const gina = await person('gina');
    const { room_id: roomId } = await gina.rooms.create({ visibility: 'public', name: 'Meet' });
    const path = (u: Person) => `/api/v1/presence/${encodeURIComponent(u.id)}`;
    // Strangers: refused, the same for a user who does not exist.
    await expect(frank.client.request('GET', path(gina))).rejects.toMatchObject({ status: 403 });
    await expect(frank.client.request('GET', '/api/v1/presence/%40nobody%3Ahs1.test')).rejects.toMatchObject({ status: 403 });
    expect(await gina.client.request('GET', path(gina))).toMatchObject({ user_id: gina.id });
    // Gina's presence changes while they share nothing: frank's socket hears none of it.
    const watcher = openStream(server.url, frank.token());
    await watcher.ready;
    await gina.client.request('PUT', '/api/v1/presence', { presence: 'idle' });
    await frank.rooms.join(roomId);
    await gina.client.request('PUT', '/api/v1/presence', { presence: 'online' });
    const seen = await watcher.waitFor((f) => f.kind === 'presence' && f.data.user_id === gina.id);
    expect(seen.kind === 'presence' && seen.data.presence).toBe('online');
    watcher.close();
    expect(await frank.client.request('GET', path(gina))).toMatchObject({ user_id: gina.id, presence: 'online' });
    // Replay from the start shows none of gina's presence from before they shared a room.
    for (const frames of [await replayWs(frank, 0), await replayPoll(frank, 0)]) {
      const hers = frames.filter((f) => f.kind === 'presence' && f.data.user_id === gina.id);
      expect(hers.map((f) => f.kind === 'presence' && f.data.presence)).toEqual(['online']);
    }
    // Once frank leaves, the GET refuses again.
    await frank.rooms.leave(roomId);
    await expect(frank.client.request('GET', path(gina))).rejects.toMatchObject({ status: 403 });
  });

  it('shared visibility: a late joiner replays what /messages shows, the history included', async () => {
    const erin = await person('erin');
    const { room_id: roomId } = await alice.rooms.create({ visibility: 'public', name: 'Open book' });
    await alice.rooms.sendText(roomId, 'old news');
    await erin.rooms.join(roomId);
    for (const frames of [await replayWs(erin, 0), await replayPoll(erin, 0)]) {
      expect(roomEvents(frames, roomId).map((e) => e.content.body)).toContain('old news');
      await expectOnlyVisible(erin, roomId, frames);
    }
  });
});
