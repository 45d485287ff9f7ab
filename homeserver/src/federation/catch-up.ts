import { randomBytes } from 'node:crypto';
import type { FederationClient } from '@parley/federation/transport';
import type { Logger } from '../logger.js';
import type { RoomRepository } from '../repositories/rooms.js';
import type { Clock } from '../services/clock.js';

export interface CatchUpOptions {
  /** Servers contacted at most (the ones sharing the most recent rooms first is not needed: all are equal). */
  maxServers: number;
  concurrency: number;
  timeoutMs: number;
}

export const CATCH_UP_DEFAULTS: CatchUpOptions = { maxServers: 2_000, concurrency: 8, timeoutMs: 10_000 };

/**
 * Tells every server we share a room with that we are back, right after a start.
 *
 * While we were away, each of them backed off delivering to us — after a day, to one try an
 * hour — and would keep us waiting that long after we return. Any signed request from us
 * makes a server retry its queue for us at once (docs/protocol.md: an inbound request from a
 * destination triggers an immediate retry), so we send each one an empty transaction. It
 * also reaches the hosts of our rooms (which then push what we missed, from their outbox)
 * and the participants that queued submits for our rooms. Bounded in servers, in parallel
 * requests and in time; a server that does not answer is simply left to its own schedule.
 */
export async function announceReturn(
  deps: { rooms: RoomRepository; client: FederationClient; serverName: string; clock: Clock; log: Logger },
  options: CatchUpOptions = CATCH_UP_DEFAULTS,
): Promise<{ contacted: number; failed: number }> {
  const servers = await deps.rooms.sharedServers(deps.serverName, options.maxServers);
  const txnId = `back-${deps.clock.now()}-${randomBytes(6).toString('base64url')}`;
  let next = 0;
  let failed = 0;
  const worker = async () => {
    while (next < servers.length) {
      const destination = servers[next++] as string;
      try {
        await deps.client.request({
          destination,
          method: 'PUT',
          path: `/federation/v1/send/${txnId}`,
          body: { events: [], edus: [] },
          timeoutMs: options.timeoutMs,
        });
      } catch (err) {
        failed++;
        deps.log.debug({ destination, err: (err as Error).message }, 'catch-up: server not reached');
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(options.concurrency, servers.length) }, worker));
  if (servers.length > 0) deps.log.info({ servers: servers.length, failed }, 'told the servers we share rooms with that we are back');
  return { contacted: servers.length, failed };
}
