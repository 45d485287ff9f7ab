import { RoomsApi } from '@parley/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuthContext } from '../src/services/sessions.js';
import { startTestServer, type TestServer } from './support/server.js';

/**
 * A person's messages must keep the order they were sent in. The web client sends one at a
 * time per room; the server keeps a device's order for the sends it has: sends from one
 * device to one room are sequenced in the order they reached the send path, even when
 * they are all in flight at once (each does its own reads before it reaches the room's
 * sequencer, which used to let a later one overtake).
 */
describe('one device, one room: sends keep their order', () => {
  let server: TestServer;
  let auth: AuthContext;
  let roomId: string;

  beforeAll(async () => {
    server = await startTestServer();
    const alice = server.client();
    await alice.register({ username: 'alice', password: 'alice password' });
    auth = await server.services.sessions.authenticate(alice.session?.access_token as string, '127.0.0.1');
    roomId = (await new RoomsApi(alice).create({ name: 'order', visibility: 'private' })).room_id;
  });
  afterAll(async () => {
    await server?.close();
  });

  it('60 concurrent sends are sequenced in call order', async () => {
    const sends = Array.from({ length: 60 }, (_, i) =>
      server.services.rooms.send(auth, roomId, 'room.message', `order-${i}`, { msgtype: 'text', body: String(i) }),
    );
    const answers = await Promise.all(sends);
    const seqs = answers.map((a) => a.seq as number);
    expect(seqs).toEqual([...seqs].sort((x, y) => x - y));
  });

  it('a repeated txn ID still answers the first event, in order with the rest', async () => {
    const first = await server.services.rooms.send(auth, roomId, 'room.message', 'again-0', { msgtype: 'text', body: 'a' });
    const [again, next] = await Promise.all([
      server.services.rooms.send(auth, roomId, 'room.message', 'again-0', { msgtype: 'text', body: 'a' }),
      server.services.rooms.send(auth, roomId, 'room.message', 'again-1', { msgtype: 'text', body: 'b' }),
    ]);
    expect(again.event_id).toBe(first.event_id);
    expect(next.seq as number).toBeGreaterThan(first.seq as number);
  });
});
