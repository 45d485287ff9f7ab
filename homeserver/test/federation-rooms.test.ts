import { signEvent } from '@parley/federation/events';
import { type ParleyClient, RoomsApi } from '@parley/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RoomVerifier } from '../src/services/room-verify.js';
import { startFederatedPair } from './support/federated-pair.js';
import { until } from './support/net.js';
import type { TestServer } from './support/server.js';
import { bodyOf, openStream } from './support/stream-client.js';

/** A room hosted on hs1 with a member on hs2, over real TLS on loopback. */
describe('federation: a room shared by two servers', () => {
  let a: TestServer;
  let b: TestServer;
  let alice: RoomsApi;
  let bob: RoomsApi;
  let bobClient: ParleyClient;
  let roomId: string;

  beforeAll(async () => {
    ({ a, b } = await startFederatedPair());
    const ac = a.client();
    await ac.register({ username: 'alice', password: 'alice password' });
    alice = new RoomsApi(ac);
    bobClient = b.client();
    await bobClient.register({ username: 'bob', password: 'bob password' });
    bob = new RoomsApi(bobClient);
    ({ room_id: roomId } = await alice.create({ visibility: 'public', name: 'Across' }));
    await alice.sendText(roomId, 'before bob came');
  });
  afterAll(async () => {
    await b?.close();
    await a?.close();
  });

  it('joins a room on another server and receives its verified history', async () => {
    expect(await bob.join(roomId)).toEqual({ room_id: roomId });
    const page = await bob.messages(roomId, { limit: 50 });
    expect(page.chunk.map((e) => e.content.body).filter(Boolean)).toContain('before bob came');
    expect((await alice.members(roomId)).map((m) => m.user_id)).toContain('@bob:hs2.test');
  });

  it('chats both ways: host events reach the participant, participant events are sequenced by the host', async () => {
    const stream = openStream(b.url, bobClient.session?.access_token as string);
    await stream.ready;
    await alice.sendText(roomId, 'hello from hs1');
    await stream.waitFor((f) => bodyOf(f) === 'hello from hs1', 20_000);
    const sent = await bob.sendText(roomId, 'hello from hs2', 'b-1');
    expect(sent.seq).toBeGreaterThan(0);
    // A retry of the txn on the participant answers the same event and sends nothing new.
    expect((await bob.sendText(roomId, 'hello from hs2', 'b-1')).event_id).toBe(sent.event_id);
    // Answered once the host's fan-out brought it back: readable on hs2 at once.
    expect((await bob.event(roomId, sent.event_id)).seq).toBe(sent.seq);
    await until(async () => (await alice.messages(roomId, { limit: 5 })).chunk.some((e) => e.content.body === 'hello from hs2'));
    // The participant gets its own event back from the host, in order.
    await stream.waitFor((f) => bodyOf(f) === 'hello from hs2', 20_000);
    stream.close();
    // Same order on both servers.
    await until(
      async () => (await bob.messages(roomId, { limit: 1 })).chunk[0]?.seq === (await alice.messages(roomId, { limit: 1 })).chunk[0]?.seq,
    );
    const onA = (await alice.messages(roomId, { limit: 100 })).chunk.map((e) => e.event_id);
    const onB = (await bob.messages(roomId, { limit: 100 })).chunk.map((e) => e.event_id);
    expect(onB).toEqual(onA);
  });

  it('the same txn sent twice at once by a participant (a client retry racing the first) is one event', async () => {
    const [first, second] = await Promise.all([
      bob.sendText(roomId, 'sent twice at once', 'b-twice'),
      bob.sendText(roomId, 'sent twice at once', 'b-twice'),
    ]);
    expect(second.event_id).toBe(first.event_id);
    await until(async () => (await alice.messages(roomId, { limit: 5 })).chunk.some((e) => e.event_id === first.event_id));
    const copies = (await alice.messages(roomId, { limit: 20 })).chunk.filter((e) => e.content.body === 'sent twice at once');
    expect(copies).toHaveLength(1);
  });

  it('edits, reactions and redactions cross too, and both copies of the chain verify', async () => {
    const { event_id } = await alice.sendText(roomId, 'typo hree');
    await alice.edit(roomId, event_id, 'typo here');
    await until(async () => {
      try {
        return (await bob.event(roomId, event_id)).unsigned?.edit !== undefined;
      } catch {
        return false;
      }
    });
    await bob.react(roomId, event_id, '👍');
    await until(async () => JSON.stringify((await alice.event(roomId, event_id)).unsigned?.reactions ?? []).includes('👍'));
    const secret = await bob.sendText(roomId, 'oops secret');
    await bob.redact(roomId, secret.event_id);
    await until(async () => {
      try {
        return Object.keys((await alice.event(roomId, secret.event_id)).content).length === 0;
      } catch {
        return false;
      }
    });
    await until(async () => {
      try {
        return Object.keys((await bob.event(roomId, secret.event_id)).content).length === 0;
      } catch {
        return false;
      }
    });
    for (const s of [a, b]) {
      const keys = s.federation?.context.keyStore;
      const report = await new RoomVerifier(s.services.roomRepo, s.services.eventRepo, s.services.identity, keys).verify(roomId);
      expect(report, JSON.stringify(report)).toMatchObject({ ok: true });
    }
  });

  it('the participant refuses to act where the rules say no (the host decides)', async () => {
    await expect(bob.setState(roomId, 'room.name', { name: 'Bob’s now' })).rejects.toMatchObject({ status: 403 });
  });

  it('invites a user of another server, who sees the invite, joins, and can decline another', async () => {
    const carolClient = b.client();
    await carolClient.register({ username: 'carol', password: 'carol password' });
    const carol = new RoomsApi(carolClient);
    const stream = openStream(b.url, carolClient.session?.access_token as string);
    await stream.ready;
    const { room_id: privateRoom } = await alice.create({ visibility: 'private', name: 'Secret plans', invite: ['@carol:hs2.test'] });
    await stream.waitFor(
      (f) => f.kind === 'event' && f.data.event.room_id === privateRoom && f.data.event.content.membership === 'invite',
      20_000,
    );
    await until(async () => (await carol.list()).some((r) => r.room_id === privateRoom && r.membership === 'invite'));
    await carol.join(privateRoom);
    expect((await carol.list()).find((r) => r.room_id === privateRoom)).toMatchObject({ membership: 'join', name: 'Secret plans' });
    await carol.sendText(privateRoom, 'carol is in');
    await until(async () => (await alice.messages(privateRoom, { limit: 3 })).chunk.some((e) => e.content.body === 'carol is in'));

    const { room_id: unwanted } = await alice.create({ visibility: 'private', name: 'Spam', invite: ['@carol:hs2.test'] });
    await until(async () => (await carol.list()).some((r) => r.room_id === unwanted));
    await carol.leave(unwanted);
    expect((await carol.list()).some((r) => r.room_id === unwanted)).toBe(false);
    await until(async () => (await alice.members(unwanted)).find((m) => m.user_id === '@carol:hs2.test')?.membership === 'leave');
    stream.close();
  });

  it('channels of a space carry their own copy of the space roles: a remote moderator made in the space acts in the channel, and the channel verifies on its own', async () => {
    const { room_id: spaceId } = await alice.create({ visibility: 'public', name: 'Space', kind: 'space' });
    const { room_id: channel } = await alice.create({ visibility: 'public', name: 'general', parent: spaceId });
    const dc = a.client();
    await dc.register({ username: 'dave', password: 'dave password' });
    const dave = new RoomsApi(dc);
    await dave.join(channel);
    await bob.join(spaceId);
    await bob.join(channel);
    await expect(bob.kick(channel, '@dave:hs1.test')).rejects.toMatchObject({ status: 403 });
    const roles = await alice.getStateContent<{ users: Record<string, string[]> }>(spaceId, 'room.roles');
    await alice.setState(spaceId, 'room.roles', { ...roles, users: { ...roles.users, '@bob:hs2.test': ['moderator'] } });
    // The channel got the same roles as an event of its own log, and hs2 verified and applied it.
    await until(async () => {
      const onB = await bob.getStateContent<{ users: Record<string, string[]> }>(channel, 'room.roles').catch(() => null);
      return onB?.users['@bob:hs2.test']?.includes('moderator') === true;
    });
    await bob.kick(channel, '@dave:hs1.test');
    await until(async () => (await a.services.roomRepo.membership(channel, '@dave:hs1.test')) === 'leave');
    for (const s of [a, b]) {
      const report = await new RoomVerifier(
        s.services.roomRepo,
        s.services.eventRepo,
        s.services.identity,
        s.federation?.context.keyStore,
      ).verify(channel);
      expect(report, JSON.stringify(report)).toMatchObject({ ok: true });
    }
  });

  it('two users of one server joining a new remote room at the same moment both get in', async () => {
    const { room_id: fresh } = await alice.create({ visibility: 'public', name: 'Rush' });
    const users = [];
    for (const name of ['rush1', 'rush2', 'rush3']) {
      const c = b.client();
      await c.register({ username: name, password: `${name} password` });
      users.push(new RoomsApi(c));
    }
    const results = await Promise.allSettled(users.map((u) => u.join(fresh)));
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'fulfilled']);
    await until(async () => (await alice.members(fresh)).filter((m) => m.membership === 'join').length === 4);
  });

  it('many concurrent sends from a participant are submitted in batches, in order, each answered', async () => {
    const submits = async () => {
      const text = await (await fetch(`${a.url}/metrics`)).text();
      return [...text.matchAll(/parley_http_requests_total\{[^}]*route="\/federation\/v1\/rooms\/:roomId\/submit"[^}]*\} (\d+)/g)].reduce(
        (n, m) => n + Number(m[1]),
        0,
      );
    };
    const before = await submits();
    const sent = await Promise.all(Array.from({ length: 120 }, (_, i) => bob.sendText(roomId, `burst ${i}`, `burst-${i}`)));
    expect(sent.every((r) => typeof r.seq === 'number')).toBe(true);
    const requests = (await submits()) - before;
    // Batched: fewer requests than events. (How many batches depends on how the sends and
    // answers interleave, so no tighter bound; one request per event would be 120.)
    expect(requests).toBeGreaterThan(0);
    expect(requests).toBeLessThan(120);
    // Each sender's order is kept: seqs rise in the order the sends were queued.
    const seqs = sent.map((r) => r.seq as number);
    expect(new Set(seqs).size).toBe(120);
    const onHost = (await alice.messages(roomId, { limit: 200 })).chunk.filter((e) => String(e.content.body).startsWith('burst '));
    expect(onHost).toHaveLength(120);
  });

  it("one device's sends to a room hosted elsewhere, all in flight at once, are sequenced by the host in the order they reached its server", async () => {
    const auth = await b.services.sessions.authenticate(bobClient.session?.access_token as string, '127.0.0.1');
    const answers = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        b.services.rooms.send(auth, roomId, 'room.message', `kept-${i}`, { msgtype: 'text', body: `kept ${i}` }),
      ),
    );
    const seqs = answers.map((x) => x.seq as number);
    expect(seqs).toEqual([...seqs].sort((x, y) => x - y));
    const onHost = (await alice.messages(roomId, { dir: 'b', limit: 100 })).chunk
      .map((e) => String(e.content.body))
      .filter((body) => body.startsWith('kept '))
      .reverse();
    expect(onHost).toEqual(Array.from({ length: 40 }, (_, i) => `kept ${i}`));
  });

  it('a batched submit is answered per event: valid ones sequenced, bad ones refused with their reason', async () => {
    const identity = b.services.identity;
    const sign = (sender: string, body: string) =>
      signEvent(
        { room_id: roomId, type: 'room.message', sender, origin: 'hs2.test', origin_ts: Date.now(), lamport: 0, content: { body } },
        'hs2.test',
        identity,
      ).event;
    const good = sign('@bob:hs2.test', 'in a batch');
    const stranger = sign('@nobody:hs2.test', 'not a member');
    const res = await b.federation?.context.client.request({
      destination: 'hs1.test',
      method: 'POST',
      path: `/federation/v1/rooms/${encodeURIComponent(roomId)}/submit`,
      body: { events: [good, stranger, { not: 'an event' }, good] },
    });
    const results = ((res as { body: unknown }).body as { results: Array<{ seq?: number; error?: { status: number; message: string } }> })
      .results;
    expect(results).toHaveLength(4);
    expect(results[0]?.seq).toBeGreaterThan(0);
    expect(results[1]?.error?.status).toBe(403);
    expect(results[2]?.error?.status).toBe(400);
    expect(results[3]?.seq).toBe(results[0]?.seq);
    await expect(
      b.federation?.context.client.request({
        destination: 'hs1.test',
        method: 'POST',
        path: `/federation/v1/rooms/${encodeURIComponent(roomId)}/submit`,
        body: { events: Array.from({ length: 101 }, () => good) },
      }),
    ).rejects.toMatchObject({ status: 413 });
  });
});
