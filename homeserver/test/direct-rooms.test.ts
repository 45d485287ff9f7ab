import { type ParleyClient, RoomsApi } from '@parley/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from './support/server.js';

async function user(server: TestServer, name: string): Promise<{ client: ParleyClient; rooms: RoomsApi; id: string }> {
  const client = server.client();
  await client.register({ username: name, password: `${name} password` });
  return { client, rooms: new RoomsApi(client), id: `@${name}:hs1.test` };
}

describe('direct messages: is_direct on create, in room.create and in summaries', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(() => server?.close());

  it('marks a room created with is_direct for both people, and no other room', async () => {
    const alice = await user(server, 'alice');
    const bob = await user(server, 'bob');
    const { room_id: dm } = await alice.rooms.create({ visibility: 'private', invite: [bob.id], is_direct: true });
    const { room_id: plain } = await alice.rooms.create({ visibility: 'private', name: 'Plain' });

    expect(await alice.rooms.getStateContent(dm, 'room.create')).toMatchObject({ creator: alice.id, is_direct: true });
    expect(await alice.rooms.getStateContent(plain, 'room.create')).not.toHaveProperty('is_direct');

    const mine = await alice.rooms.list();
    expect(mine.find((r) => r.room_id === dm)?.is_direct).toBe(true);
    expect(mine.find((r) => r.room_id === plain)?.is_direct).toBe(false);
    // The invitee sees the invite as direct before joining, and after.
    expect((await bob.rooms.list()).find((r) => r.room_id === dm)).toMatchObject({ membership: 'invite', is_direct: true });
    await bob.rooms.join(dm);
    expect((await bob.rooms.list()).find((r) => r.room_id === dm)).toMatchObject({ membership: 'join', is_direct: true });
  });

  it('refuses a non-boolean is_direct with a 400 naming the field', async () => {
    const carol = await user(server, 'carol');
    const res = await carol.client.request('POST', '/api/v1/rooms', { visibility: 'private', is_direct: 'yes' }).then(
      () => null,
      (err: unknown) => err,
    );
    expect(res).toMatchObject({ status: 400 });
    expect(String((res as Error).message)).toContain('is_direct');
  });
});
