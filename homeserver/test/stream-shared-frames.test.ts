import { type ParleyClient, RoomsApi } from '@parley/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from './support/server.js';
import { bodyOf, openStream } from './support/stream-client.js';

/**
 * A live frame is serialised once per note and unread count and the same bytes go to every
 * receiver with that count (gateway/frames.ts): what each receiver gets must still be its own
 * — its unread count, and the txn_id only on the device that sent.
 */
describe('live frames shared across receivers', () => {
  let server: TestServer;

  async function person(name: string): Promise<{ client: ParleyClient; rooms: RoomsApi; token: () => string }> {
    const client = server.client();
    await client.register({ username: name, password: `${name} password` });
    return { client, rooms: new RoomsApi(client), token: () => client.session?.access_token as string };
  }

  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(() => server?.close());

  it('each receiver gets its own unread count, and only the sending device its txn_id', async () => {
    const alice = await person('alice');
    const bob = await person('bob');
    const carol = await person('carol');
    const { room_id: roomId } = await alice.rooms.create({ visibility: 'public', name: 'Shared frames' });
    await bob.rooms.join(roomId);
    await carol.rooms.join(roomId);
    const first = await alice.rooms.sendText(roomId, 'one', 'txn-shared-1');
    await alice.rooms.sendText(roomId, 'two', 'txn-shared-2');
    // Carol has read up to the first message, Bob nothing: 1 and 2 unread before the next one.
    await carol.rooms.markRead(roomId, first.event_id);
    // A second device of Alice's: same user, not the sending device.
    const aliceOther = server.client();
    await aliceOther.login({ username: 'alice', password: 'alice password' });

    const streams = {
      bob: openStream(server.url, bob.token()),
      bob2: openStream(server.url, bob.token()),
      carol: openStream(server.url, carol.token()),
      alice: openStream(server.url, alice.token()),
      aliceOther: openStream(server.url, aliceOther.session?.access_token as string),
    };
    await Promise.all(Object.values(streams).map((s) => s.ready));
    await alice.rooms.sendText(roomId, 'three', 'txn-shared-3');
    const got = Object.fromEntries(
      await Promise.all(Object.entries(streams).map(async ([k, s]) => [k, await s.waitFor((f) => bodyOf(f) === 'three')] as const)),
    );
    const data = (k: string) => {
      const f = got[k];
      if (f?.kind !== 'event') throw new Error(`${k}: not an event frame`);
      return f.data;
    };
    expect(data('bob').unread_count).toBe(3);
    expect(data('bob2').unread_count).toBe(3);
    expect(data('carol').unread_count).toBe(2);
    // The sender's own messages never count toward her unread count.
    expect(data('alice').unread_count).toBe(0);
    expect(data('aliceOther').unread_count).toBe(0);
    expect(data('alice').event.unsigned?.txn_id).toBe('txn-shared-3');
    for (const k of ['bob', 'bob2', 'carol', 'aliceOther']) expect(data(k).event.unsigned?.txn_id, k).toBeUndefined();
    // Otherwise the same event at the same position for everyone.
    const positions = new Set(Object.values(got).map((f) => f?.position));
    expect(positions.size).toBe(1);
    const withoutTxn = (k: string) => {
      const { unsigned: _u, ...rest } = data(k).event;
      return rest;
    };
    for (const k of ['bob2', 'carol', 'alice', 'aliceOther']) expect(withoutTxn(k), k).toEqual(withoutTxn('bob'));
    for (const s of Object.values(streams)) s.close();
  });
});
