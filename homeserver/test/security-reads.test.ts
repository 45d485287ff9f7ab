import { type ParleyApiError, RoomsApi } from '@parley/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from './support/server.js';

// Issue 10: room read paths. Each test is named after the finding it guards.

async function refusal(p: Promise<unknown>): Promise<ParleyApiError> {
  try {
    await p;
  } catch (err) {
    return err as ParleyApiError;
  }
  throw new Error('expected the request to be refused');
}

describe('security: room read paths', () => {
  let server: TestServer;
  const api: Record<string, RoomsApi> = {};
  const id = (name: string) => `@${name}:hs1.test`;

  beforeAll(async () => {
    server = await startTestServer();
    for (const name of ['alice', 'bob', 'carol', 'dave', 'erin', 'frank']) {
      const c = server.client();
      await c.register({ username: name, password: `${name} password` });
      api[name] = new RoomsApi(c);
    }
  });
  afterAll(() => server?.close());

  const alice = () => api.alice as RoomsApi;
  const bob = () => api.bob as RoomsApi;
  const carol = () => api.carol as RoomsApi;
  const dave = () => api.dave as RoomsApi;
  const erin = () => api.erin as RoomsApi;
  const frank = () => api.frank as RoomsApi;

  it('security: M1 banned, kicked or departed users read state and members only as of their departure', async () => {
    const { room_id: room } = await alice().create({ visibility: 'public', name: 'Before', topic: 'old topic' });
    await bob().join(room);
    await erin().join(room);
    await frank().join(room);
    await alice().ban(room, id('bob'));
    await alice().kick(room, id('erin'));
    await frank().leave(room);
    // After they are gone: a new topic, name and member.
    await alice().setState(room, 'room.topic', { topic: 'secret new topic' });
    await alice().setState(room, 'room.name', { name: 'After' });
    await carol().join(room);

    for (const former of [bob(), erin(), frank()]) {
      const state = await former.getState(room);
      expect(state.find((e) => e.type === 'room.topic')?.content.topic).toBe('old topic');
      expect(state.find((e) => e.type === 'room.name')?.content.name).toBe('Before');
      expect(state.some((e) => e.type === 'room.member' && e.state_key === id('carol'))).toBe(false);
      expect(await former.getStateContent(room, 'room.topic')).toEqual({ topic: 'old topic' });
      expect((await refusal(former.getStateContent(room, 'room.member', id('carol')))).status).toBe(404);
      const members = await former.members(room);
      expect(members.map((m) => m.user_id)).not.toContain(id('carol'));
    }
    // A current member still sees the present.
    expect(await carol().getStateContent(room, 'room.topic')).toEqual({ topic: 'secret new topic' });
    expect((await carol().members(room)).map((m) => m.user_id)).toContain(id('carol'));
  });

  it('security: M1 being banned before ever joining grants nothing', async () => {
    const { room_id: room } = await alice().create({ visibility: 'public', name: 'Pre-ban', topic: 'private plans' });
    await alice().ban(room, id('dave'));
    expect((await refusal(dave().getState(room))).status).toBe(403);
    expect((await refusal(dave().getStateContent(room, 'room.topic'))).status).toBe(403);
    expect((await refusal(dave().members(room))).status).toBe(403);
    expect((await refusal(dave().messages(room))).status).toBe(403);
    expect((await refusal(dave().hierarchy(room))).status).toBe(403);
  });

  it('security: M1 an invite that was withdrawn leaves state as of the withdrawal', async () => {
    const { room_id: room } = await alice().create({ visibility: 'private', name: 'Invite only', topic: 'first' });
    await alice().invite(room, id('dave'));
    // While invited: the present.
    expect(await dave().getStateContent(room, 'room.topic')).toEqual({ topic: 'first' });
    await alice().kick(room, id('dave'));
    await alice().setState(room, 'room.topic', { topic: 'second' });
    expect(await dave().getStateContent(room, 'room.topic')).toEqual({ topic: 'first' });
  });

  it('security: M7 /messages for a user who left costs a bounded number of queries, not O(room)', async () => {
    const { room_id: room } = await alice().create({ visibility: 'public', name: 'Busy' });
    await bob().join(room);
    await bob().sendText(room, 'bob was here');
    await bob().leave(room);
    const EVENTS = 400;
    for (let i = 0; i < EVENTS; i += 20) {
      await Promise.all(Array.from({ length: 20 }, (_, j) => alice().sendText(room, `after ${i + j}`)));
    }
    let queries = 0;
    const count = () => {
      queries += 1;
    };
    server.services.db.on('query', count);
    try {
      const page = await bob().messages(room, { limit: 1 });
      expect(page.chunk.map((e) => e.content.body)).toEqual([undefined]); // bob's own leave event
      expect(page.chunk[0]?.type).toBe('room.member');
    } finally {
      server.services.db.off('query', count);
    }
    // Before the fix: one batch of 12 events per query across all 400 later events (> 30).
    expect(queries).toBeLessThan(12);
  });

  it('security: M7 paging past the join of a joined-only member costs a bounded number of queries', async () => {
    const { room_id: room } = await alice().create({ visibility: 'public', name: 'Before you', history_visibility: 'joined' });
    for (let i = 0; i < 400; i += 20) {
      await Promise.all(Array.from({ length: 20 }, (_, j) => alice().sendText(room, `before ${i + j}`)));
    }
    await carol().join(room);
    const first = await carol().messages(room, { limit: 1 });
    expect(first.chunk[0]?.type).toBe('room.member');
    let queries = 0;
    const count = () => {
      queries += 1;
    };
    const counted = async <T>(work: () => Promise<T>): Promise<T> => {
      queries = 0;
      server.services.db.on('query', count);
      try {
        return await work();
      } finally {
        server.services.db.off('query', count);
      }
    };
    // Back past her join: the 400 messages are hidden from carol, only the room's opening
    // state (sent while it was still 'shared') remains. Found without walking the 400.
    const older = await counted(() => carol().messages(room, { limit: 10, from: first.end as string }));
    expect(older.chunk.some((e) => String(e.content.body ?? '').startsWith('before'))).toBe(false);
    expect(queries).toBeLessThan(12);
    // Forward from inside the hidden stretch: the next visible event is her join.
    const fwd = await counted(() => carol().messages(room, { limit: 1, dir: 'f', from: 's20' }));
    expect(fwd.chunk[0]?.type).toBe('room.member');
    expect(fwd.chunk[0]?.state_key).toBe(id('carol'));
    expect(queries).toBeLessThan(12);
    // Context around her join reaches the visible events behind the hidden stretch.
    const ctx = await carol().context(room, fwd.chunk[0]?.event_id as string, 4);
    expect(ctx.before).toHaveLength(2);
    expect(ctx.before.some((e) => String(e.content.body ?? '').startsWith('before'))).toBe(false);
  });

  it('security: L1 edits, reactions and thread counts made after a user left stay hidden from them', async () => {
    const { room_id: room } = await alice().create({ visibility: 'public', name: 'Aggregations' });
    await bob().join(room);
    await carol().join(room);
    const { event_id: target } = await alice().sendText(room, 'original');
    await carol().react(room, target, '👍');
    await bob().leave(room);
    await alice().edit(room, target, 'edited after bob left');
    await carol().react(room, target, '🎉');
    await carol().reply(room, target, 'thread reply after bob left', true);

    const seen = (await bob().messages(room, { limit: 50 })).chunk.find((e) => e.event_id === target);
    expect(seen?.content.body).toBe('original');
    expect(seen?.unsigned?.edit).toBeUndefined();
    expect(seen?.unsigned?.thread).toBeUndefined();
    expect(seen?.unsigned?.reactions).toEqual([{ key: '👍', count: 1, me: false }]);
    const single = await bob().event(room, target);
    expect(single.unsigned?.edit).toBeUndefined();
    expect(single.unsigned?.reactions).toEqual([{ key: '👍', count: 1, me: false }]);
    // Carol, still joined, sees all of it.
    const full = await carol().event(room, target);
    expect(full.unsigned?.edit).toBeDefined();
    expect(full.unsigned?.thread).toMatchObject({ count: 1 });
  });

  it('security: L1 search results carry no edits made while the caller was away', async () => {
    const { room_id: room } = await alice().create({ visibility: 'public', name: 'Joined only', history_visibility: 'joined' });
    await frank().join(room);
    const { event_id: target } = await alice().sendText(room, 'needle in the haystack');
    await frank().leave(room);
    await alice().edit(room, target, 'needle moved while frank was away');
    await alice().react(room, target, '🙈');
    await frank().join(room);
    const hit = (await frank().search('haystack', { room_id: room })).results.find((r) => r.event.event_id === target);
    expect(hit?.event.content.body).toBe('needle in the haystack');
    expect(hit?.event.unsigned?.edit).toBeUndefined();
    expect(hit?.event.unsigned?.reactions).toBeUndefined();
    // /messages agrees.
    const seen = (await frank().messages(room, { limit: 50 })).chunk.find((e) => e.event_id === target);
    expect(seen?.unsigned?.edit).toBeUndefined();
  });

  it('security: L2 an out-of-range pagination token is a 400 naming the field', async () => {
    const { room_id: room } = await alice().create({ visibility: 'public', name: 'Tokens' });
    for (const from of ['s9999999999', 's2147483648']) {
      const err = await refusal(alice().messages(room, { from }));
      expect(err.status).toBe(400);
      expect(err.field).toBe('from');
    }
    expect((await alice().messages(room, { from: 's2147483647' })).chunk.length).toBeGreaterThan(0);
    expect((await refusal(alice().messages(room, { from: 's9999999999', dir: 'f' }))).field).toBe('from');
    // The other numeric parameters of the client API, each out of range.
    const { event_id: ev } = await alice().sendText(room, 'anchor');
    expect((await refusal(alice().context(room, ev, 99999999999))).field).toBe('limit');
    expect((await refusal(alice().messages(room, { limit: 99999999999 }))).field).toBe('limit');
    expect((await refusal(alice().directory({ since: 'o99999999999' }))).field).toBe('since');
    expect((await refusal(alice().directory({ limit: 99999999999 }))).field).toBe('limit');
    expect((await refusal(alice().search('anchor', { next: 'o99999999999' }))).field).toBe('next');
    expect((await refusal(alice().search('anchor', { limit: 99999999999 }))).field).toBe('limit');
  });

  it('security: L11 the space hierarchy hides invite-only channels from non-members', async () => {
    const { room_id: space } = await alice().create({ visibility: 'public', name: 'Guild', kind: 'space' });
    const { room_id: open } = await alice().create({ visibility: 'public', name: 'general', parent: space });
    const { room_id: secret } = await alice().create({
      visibility: 'private',
      name: 'staff-only',
      topic: 'layoffs next week',
      parent: space,
    });
    await carol().join(space);
    const carolView = await carol().hierarchy(space);
    expect(carolView.children.map((c) => c.room_id)).toEqual([open]);
    expect(JSON.stringify(carolView)).not.toContain('layoffs');
    // Members of the channel (and the invited) still see it.
    expect((await alice().hierarchy(space)).children.map((c) => c.room_id)).toEqual([open, secret]);
    await alice().invite(secret, id('carol'));
    expect((await carol().hierarchy(space)).children.map((c) => c.room_id)).toEqual([open, secret]);
  });

  it('security: L11 an event type named after a prototype member is an ordinary custom type', async () => {
    const { room_id: room } = await alice().create({ visibility: 'public', name: 'Prototype' });
    expect((await alice().send(room, 'constructor', { x: 1 })).event_id).toMatch(/^\$/);
    expect((await alice().setState(room, 'constructor', { x: 2 })).event_id).toMatch(/^\$/);
    expect(await alice().getStateContent(room, 'constructor')).toEqual({ x: 2 });
  });

  it('security: L8 room.avatar and room.canonical_alias cannot be sent as messages, and need MANAGE_ROOM as state', async () => {
    const { room_id: room } = await alice().create({ visibility: 'public', name: 'Avatar' });
    await bob().join(room);
    expect((await refusal(bob().send(room, 'room.avatar', { url: 'mxc://evil/x' }))).status).toBe(403);
    expect((await refusal(bob().send(room, 'room.canonical_alias', { alias: '#evil:hs1.test' }))).status).toBe(403);
    expect((await refusal(bob().setState(room, 'room.avatar', { url: 'mxc://evil/x' }))).status).toBe(403);
    // The room's own admin still sets them as state, and reading them works.
    await alice().setState(room, 'room.avatar', { url: 'mxc://hs1.test/abc' });
    expect(await bob().getStateContent(room, 'room.avatar')).toEqual({ url: 'mxc://hs1.test/abc' });
  });
});
