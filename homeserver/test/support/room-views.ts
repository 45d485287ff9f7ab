import type { RoomsApi } from '@parley/sdk';
import type { FedServer } from './federation.js';
import { until } from './net.js';

/** A user of a federation test: a logged-in client and its rooms API. */
export type Person = Awaited<ReturnType<FedServer['user']>>;

/** The `room.message` bodies of a room as one user sees them, oldest first. */
export const bodies = async (rooms: RoomsApi, roomId: string): Promise<string[]> =>
  (await rooms.messages(roomId, { limit: 500 })).chunk
    .filter((e) => e.type === 'room.message')
    .map((e) => String(e.content.body))
    .reverse();

/** A room's event IDs as one user sees them, newest first. */
export const eventIds = async (rooms: RoomsApi, roomId: string): Promise<string[]> =>
  (await rooms.messages(roomId, { limit: 500 })).chunk.map((e) => e.event_id);

/** Waits until every server's copy of the room has the same events in the same order (and holds `including`). */
export async function converged(people: Person[], roomId: string, timeoutMs = 60_000, including: string[] = []): Promise<string[]> {
  let ids: string[] = [];
  await until(async () => {
    const all = await Promise.all(people.map((p) => eventIds(p.rooms, roomId)));
    ids = all[0] as string[];
    return including.every((id) => ids.includes(id)) && all.every((list) => JSON.stringify(list) === JSON.stringify(ids));
  }, timeoutMs);
  return ids;
}

/** Logs an existing user in again (after its server restarted). */
export async function login(server: FedServer, username: string): Promise<Person> {
  const client = server.client();
  const session = await client.login({ username, password: `${username} password` });
  const { RoomsApi: Api } = await import('@parley/sdk');
  return { client, rooms: new Api(client), userId: session.user_id };
}
