import type { RoomsApi } from '@parley/sdk';
import type { FedServer } from './federation.js';

/** The bodies of a room's messages, oldest first, as a user sees them. */
export async function messageBodies(rooms: RoomsApi, roomId: string): Promise<string[]> {
  return (await rooms.messages(roomId, { limit: 500 })).chunk
    .filter((e) => e.type === 'room.message')
    .map((e) => String(e.content.body))
    .reverse();
}

/** What a relay holds from `origin` for `destination` (store-and-forward), oldest first. */
export function heldOn(relay: FedServer, origin: string, destination: string) {
  return relay.running.services.db('relay_held').where({ origin, destination }).orderBy('id');
}

/** Events `server`'s outbox still has to deliver to `destination`. */
export async function pendingEvents(server: FedServer, destination: string): Promise<number> {
  const rows = await server.running.services
    .db('outbox')
    .where({ destination, kind: 'event' })
    .whereNull('delivered_ts')
    .count<{ n: string }[]>('* as n');
  return Number(rows[0]?.n);
}
