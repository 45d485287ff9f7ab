import { randomUUID } from 'node:crypto';
import { recordHash, signEvent, signRecord } from '@parley/federation/events';
import type { RoomEvent, SeqRecord } from '@parley/schemas';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Federation, type FedServer, startFederation } from './support/federation.js';
import { until } from './support/net.js';

type Person = Awaited<ReturnType<FedServer['user']>>;

/**
 * Room entries that must be refused, sent over real signed federation requests: a tampered
 * event, a record whose `prev` breaks the chain, entries pushed by a server that is not the
 * room's host, and events submitted for users who are not in the room. Each is answered with
 * a clear per-event error; the room stays intact and the servers keep working.
 */
describe('federation: hostile room entries', () => {
  let fed: Federation;
  let hs1: FedServer;
  let hs2: FedServer;
  let hs3: FedServer;
  let alice: Person;
  let bob: Person;
  let roomId: string;

  const latest = async (server: FedServer, room = roomId) => {
    const row = await server.running.services.db('events').where({ room_id: room }).orderBy('seq', 'desc').first('event', 'record');
    const parse = (v: unknown) => (typeof v === 'string' ? JSON.parse(v) : v);
    return { event: parse(row.event) as RoomEvent, record: parse(row.record) as SeqRecord };
  };
  const push = async (from: FedServer, to: string, entries: unknown[]) => {
    const client = from.running.federation?.context.client;
    if (!client) throw new Error(`${from.name} does not federate`);
    const res = await client.request({
      destination: to,
      method: 'PUT',
      path: `/federation/v1/send/${randomUUID()}`,
      body: { events: entries, edus: [] },
    });
    return Object.values((res.body as { events: Record<string, { error?: string }> }).events);
  };

  /** A message signed by `server` (its real key) as origin for `sender`. */
  const message = (server: FedServer, sender: string, body: string, lamport = 0, room = roomId) =>
    signEvent(
      { room_id: room, type: 'room.message', sender, origin: server.name, origin_ts: Date.now(), lamport, content: { body } },
      server.name,
      server.running.services.identity,
    );

  beforeAll(async () => {
    fed = await startFederation(['hs1.test', 'hs2.test', 'hs3.test']);
    [hs1, hs2, hs3] = fed.servers as [FedServer, FedServer, FedServer];
    alice = await hs1.user('alice');
    bob = await hs2.user('bob');
    await hs3.user('mallory');
    ({ room_id: roomId } = await alice.rooms.create({ visibility: 'public' }));
    await bob.rooms.join(roomId);
    await alice.rooms.sendText(roomId, 'genuine');
    await until(async () => (await latest(hs2)).event.content.body === 'genuine');
  }, 60_000);
  afterAll(async () => fed?.close());

  it('refuses an entry whose event was tampered with (content hash)', async () => {
    const head = await latest(hs1);
    const identity = hs1.running.services.identity;
    const { event, eventId } = message(hs1, '@alice:hs1.test', 'real', 99);
    const record = signRecord(
      { room_id: roomId, seq: head.record.seq + 1, event_id: eventId, prev: recordHash(head.record), host_ts: Date.now() },
      'hs1.test',
      identity,
    );
    const tampered = { ...event, content: { body: 'forged' } };
    const [result] = await push(hs1, 'hs2.test', [{ event: tampered, record }]);
    expect(result?.error).toMatch(/record names another event|content hash|hash/);
    expect((await latest(hs2)).event.content.body).toBe('genuine');
  });

  it('refuses an entry whose record does not chain to the head (prev), signed by the genuine host', async () => {
    const head = await latest(hs1);
    const identity = hs1.running.services.identity;
    const { event, eventId } = message(hs1, '@alice:hs1.test', 'fork', 100);
    const record = signRecord(
      { room_id: roomId, seq: head.record.seq + 1, event_id: eventId, prev: 'A'.repeat(43), host_ts: Date.now() },
      'hs1.test',
      identity,
    );
    const [result] = await push(hs1, 'hs2.test', [{ event, record }]);
    expect(result?.error).toMatch(/prev/);
    expect((await latest(hs2)).event.content.body).toBe('genuine');
  });

  it('refuses entries pushed by a server that is not the host, and events for rooms it is not in', async () => {
    const genuine = await latest(hs1);
    const [relayed] = await push(hs3, 'hs2.test', [genuine]);
    expect(relayed?.error).toMatch(/hs3\.test is not the host/);
    // hs3 signs an event for its own user and asks the host to sequence it: mallory is not in the room.
    const { event } = message(hs3, '@mallory:hs3.test', 'let me in');
    await expect(
      hs3.running.federation?.context.client.request({
        destination: 'hs1.test',
        method: 'POST',
        path: `/federation/v1/rooms/${encodeURIComponent(roomId)}/submit`,
        body: { event },
      }),
    ).rejects.toMatchObject({ status: 403 });
    // …nor may it submit an event for another server's user.
    const forged = signEvent(
      {
        room_id: roomId,
        type: 'room.message',
        sender: '@bob:hs2.test',
        origin: 'hs2.test',
        origin_ts: Date.now(),
        lamport: 0,
        content: { body: 'as bob' },
      },
      'hs2.test',
      hs3.running.services.identity,
    ).event;
    await expect(
      hs3.running.federation?.context.client.request({
        destination: 'hs1.test',
        method: 'POST',
        path: `/federation/v1/rooms/${encodeURIComponent(roomId)}/submit`,
        body: { event: forged },
      }),
    ).rejects.toMatchObject({ status: 403 });
    // …nor read the room's log.
    await expect(
      hs3.running.federation?.context.client.request({
        destination: 'hs1.test',
        method: 'GET',
        path: `/federation/v1/rooms/${encodeURIComponent(roomId)}/events?from_seq=1`,
      }),
    ).rejects.toMatchObject({ status: 403 });
  });

  it('applies a pushed run up to a tampered entry and refuses the tampered one and what follows it', async () => {
    // A room of its own: these entries are signed with hs1's real key but never sequenced by
    // hs1 itself, so they fork this room's log on hs2.
    const { room_id: other } = await alice.rooms.create({ visibility: 'public' });
    await bob.rooms.join(other);
    const head = await latest(hs1, other);
    const identity = hs1.running.services.identity;
    const entries = [];
    let prev = recordHash(head.record);
    for (let k = 1; k <= 3; k++) {
      const { event, eventId } = message(hs1, '@alice:hs1.test', `run ${k}`, 200 + k, other);
      const record = signRecord(
        { room_id: other, seq: head.record.seq + k, event_id: eventId, prev, host_ts: Date.now() },
        'hs1.test',
        identity,
      );
      prev = recordHash(record);
      entries.push({ event: k === 2 ? { ...event, content: { body: 'tampered' } } : event, record });
    }
    const results = await push(hs1, 'hs2.test', entries);
    expect(results[0]).toEqual({});
    expect(results[1]?.error).toBeTruthy();
    expect(results[2]?.error).toMatch(/does not follow|prev/);
    expect((await latest(hs2, other)).event.content.body).toBe('run 1');
  });

  it('refuses one of our own events altered by the host, though its signature is not checked again', async () => {
    // hs2 signed this event itself (as a send of Bob's would be), so when it comes back under
    // the same event ID its signature is trusted; the content hash still catches the change.
    const remote = hs2.running.services.rooms.remote;
    if (!remote) throw new Error('hs2 does not federate');
    const { event, eventId } = remote.signForRemote(roomId, 'room.message', '@bob:hs2.test', { body: 'as bob wrote it' });
    const head = await latest(hs1);
    const record = signRecord(
      { room_id: roomId, seq: head.record.seq + 1, event_id: eventId, prev: recordHash(head.record), host_ts: Date.now() },
      'hs1.test',
      hs1.running.services.identity,
    );
    const [result] = await push(hs1, 'hs2.test', [{ event: { ...event, content: { body: 'as the host would have it' } }, record }]);
    expect(result?.error).toMatch(/content hash/);
    expect((await latest(hs2)).event.content.body).not.toBe('as the host would have it');
  });

  it('still works for everyone afterwards', async () => {
    await bob.rooms.sendText(roomId, 'all good');
    await until(async () => (await alice.rooms.messages(roomId, { limit: 1 })).chunk[0]?.content.body === 'all good');
    const ids = async (p: Person) => (await p.rooms.messages(roomId, { limit: 100 })).chunk.map((e) => e.event_id);
    await until(async () => JSON.stringify(await ids(alice)) === JSON.stringify(await ids(bob)));
  });
});
