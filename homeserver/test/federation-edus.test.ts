import { randomUUID } from 'node:crypto';
import type { Frame } from '@parley/schemas';
import { ParleyClient } from '@parley/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Federation, type FedServer, startFederation } from './support/federation.js';
import { until } from './support/net.js';
import { openStream, type TestStream } from './support/stream-client.js';

type Person = Awaited<ReturnType<FedServer['user']>>;

const enc = encodeURIComponent;
const tokenOf = (p: { client: ParleyClient }) => p.client.session?.access_token as string;
const typingIn =
  (roomId: string, pred: (ids: string[]) => boolean, after = 0) =>
  (f: Frame) =>
    f.kind === 'typing' && f.position > after && f.data.room_id === roomId && pred(f.data.user_ids);

/** Signs and sends a raw transaction as `from` (a real server speaking for itself). */
async function sendTxn(from: FedServer, to: string, body: { events?: unknown[]; edus: unknown[] }) {
  const client = from.running.federation?.context.client;
  if (!client) throw new Error(`${from.name} has no federation`);
  return client.request({
    destination: to,
    method: 'PUT',
    path: `/federation/v1/send/${randomUUID()}`,
    body: { events: body.events ?? [], edus: body.edus },
  });
}

async function streamRows(server: FedServer, afterPosition: number, kinds: string[]) {
  return server.running.services
    .db('stream')
    .where('position', '>', afterPosition)
    .whereIn('kind', kinds)
    .select<Array<{ kind: string; user_id: string | null; data: Record<string, unknown> }>>('kind', 'user_id', 'data');
}

const maxPosition = (server: FedServer) => server.running.services.streamRepo.maxPosition();

/**
 * Ephemeral data between three homeservers over real TLS on loopback: a room hosted on hs1
 * with members on hs2 and hs3. Typing, receipts and presence travel from each user's own
 * server straight to every other server in the room; to-device messages are durable.
 */
describe('federation: ephemeral data (typing, receipts, presence, to-device)', () => {
  let fed: Federation;
  let hs1: FedServer;
  let hs2: FedServer;
  let hs3: FedServer;
  let alice: Person;
  let bob: Person;
  let carol: Person;
  let roomId: string;
  let sA: TestStream;
  let sB: TestStream;
  let sC: TestStream;

  beforeAll(async () => {
    fed = await startFederation(['hs1.test', 'hs2.test', 'hs3.test']);
    [hs1, hs2, hs3] = fed.servers as [FedServer, FedServer, FedServer];
    alice = await hs1.user('alice');
    bob = await hs2.user('bob');
    carol = await hs3.user('carol');
    ({ room_id: roomId } = await alice.rooms.create({ visibility: 'public', name: 'Ephemeral' }));
    await bob.rooms.join(roomId);
    await carol.rooms.join(roomId);
    // Every server knows every member before the tests start.
    for (const p of [alice, bob, carol])
      await until(async () => (await p.rooms.members(roomId)).filter((m) => m.membership === 'join').length === 3);
    sA = openStream(hs1.url, tokenOf(alice));
    sB = openStream(hs2.url, tokenOf(bob));
    sC = openStream(hs3.url, tokenOf(carol));
    await Promise.all([sA.ready, sB.ready, sC.ready]);
  }, 120_000);
  afterAll(async () => {
    for (const s of [sA, sB, sC]) s?.close();
    await fed?.close();
  });

  const setTyping = (p: Person, on: boolean, timeoutMs?: number) =>
    p.client.request('PUT', `/api/v1/rooms/${enc(roomId)}/typing`, timeoutMs ? { typing: on, timeout_ms: timeoutMs } : { typing: on });

  it('typing crosses in both directions and between participants, and stops', async () => {
    await setTyping(bob, true, 20_000);
    const seen = await sA.waitFor(typingIn(roomId, (ids) => ids.includes(bob.userId)));
    // hs2 tells hs3 itself: participants do not depend on the host for ephemeral data.
    await sC.waitFor(typingIn(roomId, (ids) => ids.includes(bob.userId)));
    await setTyping(bob, false);
    await sA.waitFor(typingIn(roomId, (ids) => !ids.includes(bob.userId), seen.position));

    await setTyping(alice, true, 20_000);
    const onB = await sB.waitFor(typingIn(roomId, (ids) => ids.includes(alice.userId)));
    await setTyping(alice, false);
    await sB.waitFor(typingIn(roomId, (ids) => !ids.includes(alice.userId), onB.position));
  });

  it('a remote typing notice ends by its timeout when no stop arrives', async () => {
    // Sent by hs1 by hand, so no timer on hs1 sends a stop: hs2's own timer must end it.
    await sendTxn(hs1, 'hs2.test', { edus: [{ type: 'typing', room_id: roomId, user_id: alice.userId, typing: true, timeout_ms: 3000 }] });
    const started = await sB.waitFor(typingIn(roomId, (ids) => ids.includes(alice.userId), sB.lastPosition()));
    // Still typing after something else happened on hs2: the stop comes later, by the timer.
    const { event_id } = await bob.rooms.sendText(roomId, 'while alice types');
    const marker = await sB.waitFor((f) => f.kind === 'event' && f.data.event.event_id === event_id);
    const stopped = await sB.waitFor(
      typingIn(roomId, (ids) => !ids.includes(alice.userId), started.position),
      15_000,
    );
    expect(stopped.position).toBeGreaterThan(marker.position);
  });

  it('public receipts cross both ways; private receipts never leave their server', async () => {
    const { event_id: m1 } = await alice.rooms.sendText(roomId, 'read me');
    await until(async () => (await bob.rooms.messages(roomId, { limit: 3 })).chunk.some((e) => e.event_id === m1));
    await until(async () => (await carol.rooms.messages(roomId, { limit: 3 })).chunk.some((e) => e.event_id === m1));
    await bob.rooms.markRead(roomId, m1);
    const receipt = (userId: string, eventId: string) => (f: Frame) =>
      f.kind === 'receipt' && f.data.user_id === userId && f.data.event_id === eventId && f.data.room_id === roomId;
    const onA = await sA.waitFor(receipt(bob.userId, m1));
    expect(onA.kind === 'receipt' && onA.data.private).toBe(false);
    await sC.waitFor(receipt(bob.userId, m1));
    await alice.rooms.markRead(roomId, m1);
    await sB.waitFor(receipt(alice.userId, m1));

    const { event_id: m2 } = await alice.rooms.sendText(roomId, 'read me quietly');
    const { event_id: m3 } = await alice.rooms.sendText(roomId, 'and me openly');
    await until(async () => (await bob.rooms.messages(roomId, { limit: 3 })).chunk.some((e) => e.event_id === m3));
    await bob.client.request('POST', `/api/v1/rooms/${enc(roomId)}/receipt`, { event_id: m2, private: true });
    await sB.waitFor(receipt(bob.userId, m2)); // bob's own devices see it
    await bob.rooms.markRead(roomId, m3);
    await sA.waitFor(receipt(bob.userId, m3));
    expect(sA.frames.some(receipt(bob.userId, m2))).toBe(false);
    const queued = await hs2.running.services
      .db('outbox')
      .whereRaw("payload->>'event_id' = ?", [m2])
      .count<[{ count: string }]>('* as count');
    expect(Number(queued[0]?.count)).toBe(0);
  });

  it("a remote user's presence reaches servers sharing a room with them", async () => {
    await bob.client.request('PUT', '/api/v1/presence', { presence: 'idle' });
    const idle = await sA.waitFor((f) => f.kind === 'presence' && f.data.user_id === bob.userId && f.data.presence === 'idle');
    await sC.waitFor((f) => f.kind === 'presence' && f.data.user_id === bob.userId && f.data.presence === 'idle');
    const seen = await alice.client.request<{ presence: string; last_active_ts: number | null }>(
      'GET',
      `/api/v1/presence/${enc(bob.userId)}`,
    );
    expect(seen.presence).toBe('idle');
    expect(seen.last_active_ts).toBeGreaterThan(Date.now() - 120_000);
    await bob.client.request('PUT', '/api/v1/presence', { presence: 'online' });
    await sA.waitFor(
      (f) => f.kind === 'presence' && f.data.user_id === bob.userId && f.data.presence === 'online' && f.position > idle.position,
    );
  });

  it('delivers a to-device message to a device on another server', async () => {
    const device = bob.client.session?.device_id as string;
    await alice.client.request('PUT', `/api/v1/send_to_device/org.example.ping/${randomUUID()}`, {
      messages: { [bob.userId]: { [device]: { hello: 'bob' } }, [carol.userId]: { '*': { hello: 'carol' } } },
    });
    const got = await sB.waitFor((f) => f.kind === 'to_device' && f.data.content.hello === 'bob');
    expect(got.kind === 'to_device' && got.data).toEqual({
      sender: alice.userId,
      sender_device: alice.client.session?.device_id,
      type: 'org.example.ping',
      content: { hello: 'bob' },
    });
    await sC.waitFor((f) => f.kind === 'to_device' && f.data.content.hello === 'carol');
  });

  it('refuses EDUs a server may not send, and applies the rest of the same transaction', async () => {
    const { room_id: privateRoom } = await alice.rooms.create({ visibility: 'private', name: 'Alice alone' });
    const { event_id: privateEvent } = await alice.rooms.sendText(privateRoom, 'nobody from hs2 here');
    const { event_id: shared } = await alice.rooms.sendText(roomId, 'shared');
    await until(async () => (await bob.rooms.messages(roomId, { limit: 3 })).chunk.some((e) => e.event_id === shared));
    const before = await maxPosition(hs1);
    const aliceDevice = alice.client.session?.device_id as string;
    const res = await sendTxn(hs2, 'hs1.test', {
      edus: [
        // Users of another server (hs1's own user, then hs3's).
        { type: 'typing', room_id: roomId, user_id: alice.userId, typing: true, timeout_ms: 5000 },
        { type: 'typing', room_id: roomId, user_id: carol.userId, typing: true, timeout_ms: 5000 },
        { type: 'presence', user_id: alice.userId, presence: 'offline', last_active_ago: 0 },
        { type: 'receipt', room_id: roomId, user_id: alice.userId, event_id: shared, ts: 1 },
        // A room hs2 has nobody in, and a user of hs2 who is not joined.
        { type: 'receipt', room_id: privateRoom, user_id: bob.userId, event_id: privateEvent, ts: 1 },
        { type: 'typing', room_id: privateRoom, user_id: bob.userId, typing: true, timeout_ms: 5000 },
        { type: 'typing', room_id: roomId, user_id: '@mallory:hs2.test', typing: true, timeout_ms: 5000 },
        // An event of another room named in a receipt.
        { type: 'receipt', room_id: roomId, user_id: bob.userId, event_id: privateEvent, ts: 1 },
        // To-device in someone else's name, and for a user who is not on hs1.
        {
          type: 'to_device',
          sender: alice.userId,
          sender_device: aliceDevice,
          message_type: 'org.example.forged',
          message_id: 'forged-1',
          messages: { [alice.userId]: { '*': { forged: true } } },
        },
        {
          type: 'to_device',
          sender: bob.userId,
          sender_device: 'BOBDEV',
          message_type: 'org.example.misrouted',
          message_id: 'misrouted-1',
          messages: { [carol.userId]: { '*': { misrouted: true } }, [alice.userId]: { '*': { misrouted: true } } },
        },
        // Malformed or unknown.
        { type: 'typing', room_id: roomId },
        { type: 'typing', room_id: roomId, user_id: bob.userId, typing: 'yes', timeout_ms: 5000 },
        { type: 'receipt', room_id: roomId, user_id: bob.userId, event_id: shared, ts: 1, extra: 'x' },
        { type: 'org.example.unknown', user_id: bob.userId },
        { hello: 'world' },
        // And one good item, which must still be applied.
        { type: 'typing', room_id: roomId, user_id: bob.userId, typing: true, timeout_ms: 5000 },
      ],
    });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ events: {}, duplicate: false });
    const rows = await streamRows(hs1, before, ['typing', 'receipt', 'presence', 'to_device']);
    // The answer comes after the EDUs were applied: the good one is there, nothing else.
    expect(rows.filter((r) => r.kind === 'typing').map((r) => r.data.user_ids)).toEqual([[bob.userId]]);
    expect(rows.filter((r) => r.kind !== 'typing')).toEqual([]);
    const marker = await hs1.running.services.db('read_markers').where({ room_id: privateRoom, user_id: bob.userId }).first();
    expect(marker).toBeUndefined();
    const aliceMarker = await hs1.running.services.db('read_markers').where({ room_id: roomId, user_id: alice.userId }).first();
    expect(aliceMarker?.event_id).not.toBe(shared);
  });

  it('delivers a to-device message once, however often it is redelivered', async () => {
    const before = await maxPosition(hs2);
    const edu = {
      type: 'to_device',
      sender: alice.userId,
      sender_device: alice.client.session?.device_id,
      message_type: 'org.example.once',
      message_id: `once-${randomUUID()}`,
      messages: { [bob.userId]: { '*': { n: 1 } } },
    };
    await sendTxn(hs1, 'hs2.test', { edus: [edu] });
    await sendTxn(hs1, 'hs2.test', { edus: [edu, edu] });
    await sB.waitFor((f) => f.kind === 'to_device' && f.data.type === 'org.example.once');
    const rows = await streamRows(hs2, before, ['to_device']);
    expect(rows.filter((r) => r.data.type === 'org.example.once')).toHaveLength(1);
  });

  it('to-device messages wait for a receiver that is down; bad EDUs in the same batch do not hold up its events', async () => {
    const bobSession = bob.client.session;
    const since = sB.lastPosition();
    sB.close();
    await hs2.stop();
    await alice.client.request('PUT', `/api/v1/send_to_device/org.example.later/${randomUUID()}`, {
      messages: { [bob.userId]: { '*': { text: 'sent while you were away' } } },
    });
    const { event_id: whileDown } = await alice.rooms.sendText(roomId, 'while hs2 was down');
    // hs1 tried and failed: what follows is the durable path, not a lucky first attempt.
    await until(async () => (await hs1.running.services.db('destinations').where({ name: 'hs2.test' }).first())?.state !== 'up');
    // Typing is state: of four changes, only the latest waits for hs2.
    for (const on of [true, false, true, false]) await setTyping(alice, on, 20_000);
    await until(async () => {
      const rows = await hs1.running.services
        .db('outbox')
        .where({ destination: 'hs2.test', kind: 'edu' })
        .whereNull('delivered_ts')
        .whereRaw("payload->>'type' = 'typing' and payload->>'user_id' = ?", [alice.userId])
        .select<Array<{ payload: { typing: boolean } }>>('payload');
      return rows.length === 1 && rows[0]?.payload.typing === false;
    });
    // Queued beside them: items hs2 must skip without refusing the transaction.
    const now = Date.now();
    const junk = [
      { type: 'typing' },
      { type: 'presence', user_id: 'nobody', presence: 'away', last_active_ago: -1 },
      { type: 'x'.repeat(300) },
    ];
    await hs1.running.services.db('outbox').insert(
      junk.map((payload) => ({
        destination: 'hs2.test',
        kind: 'edu',
        payload: JSON.stringify(payload),
        created_ts: now,
        expires_ts: now + 3600_000,
      })),
    );
    await hs2.start();
    const bobAgain = new ParleyClient({ baseUrl: hs2.url, session: bobSession });
    const resumed = openStream(hs2.url, bobSession?.access_token as string, since);
    try {
      await resumed.ready;
      // Any request from hs2 tells hs1 it is back, so hs1 retries at once rather than after its backoff.
      await bobAgain.request('PUT', `/api/v1/rooms/${enc(roomId)}/typing`, { typing: true });
      const got = await resumed.waitFor((f) => f.kind === 'to_device' && f.data.type === 'org.example.later', 40_000);
      expect(got.kind === 'to_device' && got.data.content).toEqual({ text: 'sent while you were away' });
      await resumed.waitFor((f) => f.kind === 'event' && f.data.event.event_id === whileDown, 40_000);
      // Everything queued for hs2 went out, the junk included (accepted and skipped, not retried).
      await until(async () => {
        const pending = await hs1.running.services
          .db('outbox')
          .where({ destination: 'hs2.test' })
          .whereNull('delivered_ts')
          .whereNull('expired_ts')
          .count<[{ count: string }]>('* as count');
        return Number(pending[0]?.count) === 0;
      });
      expect(resumed.frames.filter((f) => f.kind === 'to_device' && f.data.type === 'org.example.later')).toHaveLength(1);
    } finally {
      resumed.close();
    }
  }, 90_000);

  it('a server that starts sharing a room learns the presence of its members (presence is otherwise only sent on change)', async () => {
    const erin = await hs1.user('erin');
    const erinStream = openStream(hs1.url, tokenOf(erin));
    await erinStream.ready; // connected: erin is online, while no other server shares a room with her
    try {
      const frank = await hs2.user('frank');
      const presenceOfErin = async () =>
        (await frank.client.request<{ presence: string }>('GET', `/api/v1/presence/${enc(erin.userId)}`)).presence;
      // No shared room: frank may not ask (L11), and hs2 was told nothing about erin.
      await expect(presenceOfErin()).rejects.toMatchObject({ status: 403 });
      expect(await hs2.running.services.db('presence').where({ user_id: erin.userId }).first()).toBeUndefined();
      const { room_id: erinsRoom } = await erin.rooms.create({ visibility: 'public', name: 'Erin' });
      await frank.rooms.join(erinsRoom);
      await until(async () => (await presenceOfErin()) === 'online', 20_000);
    } finally {
      erinStream.close();
    }
  });
});
