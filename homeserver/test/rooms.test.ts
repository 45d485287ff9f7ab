import { ParleyApiError, type ParleyClient, RoomsApi } from '@parley/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from './support/server.js';

interface User {
  client: ParleyClient;
  rooms: RoomsApi;
  id: string;
}

async function user(server: TestServer, name: string): Promise<User> {
  const client = server.client();
  await client.register({ username: name, password: `${name} password` });
  return { client, rooms: new RoomsApi(client), id: `@${name}:hs1.test` };
}

describe('rooms: create, membership, messages, relations, redaction', () => {
  let server: TestServer;
  let alice: User;
  let bob: User;
  let carol: User;
  let roomId: string;

  beforeAll(async () => {
    server = await startTestServer();
    alice = await user(server, 'alice');
    bob = await user(server, 'bob');
    carol = await user(server, 'carol');
  });
  afterAll(() => server?.close());

  it('creates a private room with name, topic, alias and an invite', async () => {
    ({ room_id: roomId } = await alice.rooms.create({
      visibility: 'private',
      name: 'General',
      topic: 'Everything',
      alias: 'general',
      invite: [bob.id],
    }));
    expect(roomId).toMatch(/^![A-Za-z0-9_-]+:hs1\.test$/);
    const state = await alice.rooms.getState(roomId);
    expect(state.map((e) => e.type)).toEqual([
      'room.create',
      'room.member',
      'room.roles',
      'room.join_rules',
      'room.history_visibility',
      'room.name',
      'room.topic',
      'room.canonical_alias',
      'room.member',
    ]);
    expect(state.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(await alice.rooms.getStateContent(roomId, 'room.join_rules')).toEqual({ join_rule: 'invite' });
    const [summary] = await alice.rooms.list();
    expect(summary).toMatchObject({
      room_id: roomId,
      name: 'General',
      topic: 'Everything',
      canonical_alias: '#general:hs1.test',
      joined_members: 1,
      membership: 'join',
    });
    await expect(carol.rooms.create({ visibility: 'public', alias: 'general' })).rejects.toMatchObject({
      status: 409,
      code: 'PARLEY_ALIAS_IN_USE',
    });
  });

  it('lets the invitee see the invite and join by alias; an uninvited user cannot join or read', async () => {
    expect((await bob.rooms.list()).find((r) => r.room_id === roomId)?.membership).toBe('invite');
    await expect(carol.rooms.join('#general:hs1.test')).rejects.toMatchObject({ status: 403 });
    await expect(carol.rooms.messages(roomId)).rejects.toMatchObject({ status: 403 });
    expect(await bob.rooms.join('#general:hs1.test')).toEqual({ room_id: roomId });
    expect(
      (await alice.rooms.members(roomId))
        .filter((m) => m.membership === 'join')
        .map((m) => m.user_id)
        .sort(),
    ).toEqual([alice.id, bob.id]);
  });

  it('chats, with idempotent sends per device and txnId', async () => {
    const first = await alice.rooms.sendText(roomId, 'hello bob', 'txn-1');
    const retry = await alice.rooms.sendText(roomId, 'hello bob', 'txn-1');
    expect(retry).toEqual(first);
    const retries = await Promise.all(Array.from({ length: 5 }, () => bob.rooms.sendText(roomId, 'hi alice', 'same-txn')));
    expect(new Set(retries.map((r) => r.event_id)).size).toBe(1);
    const page = await bob.rooms.messages(roomId, { limit: 3 });
    expect(page.chunk.map((e) => e.content.body)).toEqual(['hi alice', 'hello bob', undefined]);
    // The sending device sees its txn_id; others do not.
    expect(page.chunk[0]?.unsigned?.txn_id).toBe('same-txn');
    expect((await alice.rooms.messages(roomId, { limit: 1 })).chunk[0]?.unsigned?.txn_id).toBeUndefined();
    expect(page.chunk[0]).toMatchObject({ room_id: roomId, type: 'room.message', sender: bob.id });
    expect(page.chunk[0]?.seq).toBe((page.chunk[1]?.seq ?? 0) + 1);
    // The txn and the room are read together: a txnId used in another room is a 409, a room
    // this server does not know is a 404 (and neither stores anything).
    const { room_id: other } = await alice.rooms.create({ visibility: 'private', name: 'Other' });
    await expect(alice.rooms.sendText(other, 'hello bob', 'txn-1')).rejects.toMatchObject({ status: 409 });
    const unknown = `!${'x'.repeat(24)}:hs1.test`;
    await expect(alice.rooms.sendText(unknown, 'anyone?', 'txn-unknown')).rejects.toMatchObject({ status: 404 });
    await expect(alice.rooms.sendText(unknown, 'anyone?', 'txn-unknown')).rejects.toMatchObject({ status: 404 });
  });

  it('edits show the latest version and keep the history', async () => {
    const { event_id } = await alice.rooms.sendText(roomId, 'teh quick fox');
    await alice.rooms.edit(roomId, event_id, 'the quick fox');
    await alice.rooms.edit(roomId, event_id, 'the quick brown fox');
    const original = await bob.rooms.event(roomId, event_id);
    expect(original.content.body).toBe('teh quick fox');
    expect(original.unsigned?.edit).toMatchObject({ content: { body: 'the quick brown fox' } });
    const history = await bob.rooms.relations(roomId, event_id, 'replace');
    expect(history.map((e) => (e.content.new_content as { body: string }).body)).toEqual(['the quick fox', 'the quick brown fox']);
    await expect(bob.rooms.edit(roomId, event_id, 'not mine')).rejects.toMatchObject({ status: 403 });
  });

  it('reactions: one per user per key, counted, and removable by redaction', async () => {
    const { event_id } = await alice.rooms.sendText(roomId, 'react to me');
    const bobLike = await bob.rooms.react(roomId, event_id, '👍');
    await expect(bob.rooms.react(roomId, event_id, '👍')).rejects.toMatchObject({ status: 409, code: 'PARLEY_DUPLICATE_ANNOTATION' });
    await alice.rooms.react(roomId, event_id, '👍');
    await bob.rooms.react(roomId, event_id, '🎉');
    let ev = await alice.rooms.event(roomId, event_id);
    expect(ev.unsigned?.reactions).toEqual([
      { key: '👍', count: 2, me: true },
      { key: '🎉', count: 1, me: false },
    ]);
    await bob.rooms.redact(roomId, bobLike.event_id);
    ev = await alice.rooms.event(roomId, event_id);
    expect(ev.unsigned?.reactions).toEqual([
      { key: '👍', count: 1, me: true },
      { key: '🎉', count: 1, me: false },
    ]);
    // With the old reaction redacted, reacting again is allowed.
    await bob.rooms.react(roomId, event_id, '👍');
  });

  it('replies and threads', async () => {
    const { event_id: root } = await alice.rooms.sendText(roomId, 'thread root');
    const reply = await bob.rooms.reply(roomId, root, 'a reply');
    await bob.rooms.reply(roomId, root, 'in thread 1', true);
    const last = await alice.rooms.reply(roomId, root, 'in thread 2', true);
    const rootEvent = await bob.rooms.event(roomId, root);
    expect(rootEvent.unsigned?.thread).toEqual({ count: 2, latest_event_id: last.event_id });
    expect((await bob.rooms.event(roomId, reply.event_id)).content.relates_to).toEqual({ type: 'reply', event_id: root });
    expect((await alice.rooms.relations(roomId, root, 'thread')).map((e) => e.content.body)).toEqual(['in thread 1', 'in thread 2']);
    await expect(bob.rooms.reply(roomId, '$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA', 'orphan')).rejects.toMatchObject({ status: 400 });
  });

  it('redactions: own messages, or with MANAGE_MESSAGES; content goes, the event stays', async () => {
    const mine = await bob.rooms.sendText(roomId, 'bob secret');
    const alices = await alice.rooms.sendText(roomId, 'alice message');
    await expect(bob.rooms.redact(roomId, alices.event_id)).rejects.toMatchObject({ status: 403 });
    await bob.rooms.redact(roomId, mine.event_id, 'oops');
    const redacted = await alice.rooms.event(roomId, mine.event_id);
    expect(redacted.content).toEqual({});
    expect(redacted.unsigned?.redacted_because).toMatch(/^\$/);
    // The room admin may redact others' messages.
    await alice.rooms.redact(roomId, (await bob.rooms.sendText(roomId, 'spam')).event_id);
  });

  it('pins need MANAGE_MESSAGES; room state needs MANAGE_ROOM', async () => {
    const { event_id } = await alice.rooms.sendText(roomId, 'pin me');
    await alice.rooms.setState(roomId, 'room.pinned', { pinned: [event_id] });
    expect(await bob.rooms.getStateContent(roomId, 'room.pinned')).toEqual({ pinned: [event_id] });
    await expect(bob.rooms.setState(roomId, 'room.pinned', { pinned: [] })).rejects.toMatchObject({ status: 403 });
    await expect(bob.rooms.setState(roomId, 'room.name', { name: 'Bob’s room' })).rejects.toMatchObject({ status: 403 });
    await alice.rooms.setState(roomId, 'room.topic', { topic: 'New topic' });
    expect((await bob.rooms.list()).find((r) => r.room_id === roomId)?.topic).toBe('New topic');
  });

  it('roles: promoting a moderator lets them kick, but never someone at or above them', async () => {
    const roles = await alice.rooms.getStateContent<{ roles: Record<string, unknown>; users: Record<string, string[]> }>(
      roomId,
      'room.roles',
    );
    await alice.rooms.setState(roomId, 'room.roles', { ...roles, users: { ...roles.users, [bob.id]: ['moderator'] } });
    await alice.rooms.invite(roomId, carol.id);
    await carol.rooms.join(roomId);
    await bob.rooms.kick(roomId, carol.id, 'testing');
    expect((await alice.rooms.members(roomId)).find((m) => m.user_id === carol.id)?.membership).toBe('leave');
    await expect(bob.rooms.kick(roomId, alice.id)).rejects.toMatchObject({ status: 403 });
    await expect(
      bob.rooms.setState(roomId, 'room.roles', { ...roles, users: { ...roles.users, [bob.id]: ['admin'] } }),
    ).rejects.toMatchObject({ status: 403 });
  });

  it('ban and unban', async () => {
    await alice.rooms.invite(roomId, carol.id);
    await alice.rooms.ban(roomId, carol.id, 'bye');
    await expect(carol.rooms.join(roomId)).rejects.toMatchObject({ status: 403 });
    await expect(alice.rooms.kick(roomId, carol.id)).rejects.toMatchObject({ status: 403 });
    await alice.rooms.unban(roomId, carol.id);
    expect((await alice.rooms.members(roomId)).find((m) => m.user_id === carol.id)?.membership).toBe('leave');
    await expect(carol.rooms.join(roomId)).rejects.toMatchObject({ status: 403 }); // invite-only still
  });

  it('read markers drive unread counts', async () => {
    const before = (await bob.rooms.list()).find((r) => r.room_id === roomId);
    expect(before?.unread_count).toBeGreaterThan(0);
    const latest = (await bob.rooms.messages(roomId, { limit: 1 })).chunk[0];
    await bob.rooms.markRead(roomId, latest?.event_id as string);
    expect((await bob.rooms.list()).find((r) => r.room_id === roomId)?.unread_count).toBe(0);
    await alice.rooms.sendText(roomId, 'one more');
    await alice.rooms.sendText(roomId, 'and another');
    const after = (await bob.rooms.list()).find((r) => r.room_id === roomId);
    expect(after?.unread_count).toBe(2);
    expect(after?.last_event?.content.body).toBe('and another');
  });

  it('leaving keeps earlier history readable but hides what comes after (shared visibility)', async () => {
    const { room_id } = await alice.rooms.create({ visibility: 'public', name: 'Lobby' });
    await carol.rooms.join(room_id);
    await alice.rooms.sendText(room_id, 'while carol is here');
    await carol.rooms.leave(room_id);
    await alice.rooms.sendText(room_id, 'after carol left');
    const seen = (await carol.rooms.messages(room_id, { limit: 50 })).chunk.map((e) => e.content.body).filter(Boolean);
    expect(seen).toContain('while carol is here');
    expect(seen).not.toContain('after carol left');
  });

  it('joined-only visibility hides history from before the join', async () => {
    const { room_id } = await alice.rooms.create({ visibility: 'public', name: 'Fresh', history_visibility: 'joined' });
    await alice.rooms.sendText(room_id, 'before bob');
    await bob.rooms.join(room_id);
    await alice.rooms.sendText(room_id, 'after bob');
    const bodies = (await bob.rooms.messages(room_id)).chunk.map((e) => e.content.body).filter(Boolean);
    expect(bodies).toEqual(['after bob']);
  });

  it('public directory, spaces with channels inheriting roles', async () => {
    const { room_id: spaceId } = await alice.rooms.create({ visibility: 'public', name: 'Community', kind: 'space' });
    const { room_id: channel } = await alice.rooms.create({ visibility: 'public', name: 'announcements', parent: spaceId });
    const tree = await alice.rooms.hierarchy(spaceId);
    expect(tree.room).toMatchObject({ room_id: spaceId, kind: 'space' });
    expect(tree.children.map((c) => c.room_id)).toEqual([channel]);
    const dir = await carol.rooms.directory({ q: 'Commun' });
    expect(dir.chunk.map((r) => r.room_id)).toEqual([spaceId]);
    // Roles come from the space: making carol a moderator there lets her kick in the channel.
    await carol.rooms.join(spaceId);
    await carol.rooms.join(channel);
    await bob.rooms.join(channel);
    const roles = await alice.rooms.getStateContent<{ roles: Record<string, unknown>; users: Record<string, string[]> }>(
      spaceId,
      'room.roles',
    );
    await expect(carol.rooms.kick(channel, bob.id)).rejects.toMatchObject({ status: 403 });
    await alice.rooms.setState(spaceId, 'room.roles', { ...roles, users: { ...roles.users, [carol.id]: ['moderator'] } });
    await carol.rooms.kick(channel, bob.id);
    await expect(carol.rooms.create({ visibility: 'public', parent: roomId })).rejects.toMatchObject({ status: 400 });
  });

  it('aliases: resolve, add with MANAGE_ROOM, delete', async () => {
    expect(await bob.rooms.resolveAlias('#general:hs1.test')).toEqual({ room_id: roomId, servers: ['hs1.test'] });
    await expect(bob.rooms.putAlias('#bobs:hs1.test', roomId)).rejects.toMatchObject({ status: 403 });
    await alice.rooms.putAlias('#main:hs1.test', roomId);
    expect((await carol.rooms.resolveAlias('#main:hs1.test')).room_id).toBe(roomId);
    await alice.rooms.deleteAlias('#main:hs1.test');
    await expect(carol.rooms.resolveAlias('#main:hs1.test')).rejects.toBeInstanceOf(ParleyApiError);
  });
});
