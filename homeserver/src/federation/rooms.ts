import type { RoomEvent } from '@parley/schemas';
import type { Knex } from 'knex';
import type { Db } from '../db/database.js';
import type { Logger } from '../logger.js';
import type { EventRepository } from '../repositories/events.js';
import type { OutboxRepository } from '../repositories/outbox.js';
import type { RemoteInviteRepository } from '../repositories/room-extras.js';
import type { RoomRepository, RoomRow } from '../repositories/rooms.js';
import type { Clock } from '../services/clock.js';
import type { AppendBatch, RoomLog, SigningIdentity } from '../services/room-log.js';
import type { StreamWriter } from '../services/stream-bus.js';
import type { Entry, SubmitResult } from './rooms/common.js';
import { HostRooms } from './rooms/host.js';
import { ParticipantRooms } from './rooms/participant.js';
import type { FederationContext } from './setup.js';

export type { Entry, SubmitResult } from './rooms/common.js';

/**
 * Rooms shared across servers (docs/protocol.md), as two conversations with different trust: the
 * host side (rooms/host.ts) sequences and fans out; the participant side
 * (rooms/participant.ts) verifies everything the host sends and bounds what it may cost.
 * This is the one object the rest of the server wires.
 */
export class FederatedRooms {
  readonly host: HostRooms;
  readonly participant: ParticipantRooms;

  constructor(
    db: Db,
    rooms: RoomRepository,
    events: EventRepository,
    outbox: OutboxRepository,
    log: RoomLog,
    fed: FederationContext,
    identity: SigningIdentity,
    clock: Clock,
    logger: Logger,
    notify: (servers: Iterable<string>) => void,
    ttlMs: number,
    invites: RemoteInviteRepository,
    writer: StreamWriter,
  ) {
    this.host = new HostRooms(db, rooms, events, outbox, log, fed, identity, clock, notify, ttlMs);
    this.participant = new ParticipantRooms({
      db,
      rooms,
      events,
      outbox,
      log,
      fed,
      identity,
      clock,
      logger,
      notify,
      ttlMs,
      invites,
      writer,
    });
  }

  // ---- host side ------------------------------------------------------------------------

  fanout(room: RoomRow, batch: AppendBatch, trx: Db): Promise<Knex.Sql[]> {
    return this.host.fanout(room, batch, trx);
  }
  hostJoin(origin: string, roomId: string, raw: unknown): ReturnType<HostRooms['hostJoin']> {
    return this.host.hostJoin(origin, roomId, raw);
  }
  hostSubmitMany(origin: string, roomId: string, raws: unknown[]): Promise<SubmitResult[]> {
    return this.host.hostSubmitMany(origin, roomId, raws);
  }
  hostSubmit(origin: string, roomId: string, raw: unknown): Promise<{ event_id: string; seq: number }> {
    return this.host.hostSubmit(origin, roomId, raw);
  }
  chain(roomId: string, fromSeq: number, limit: number, askingServer?: string): Promise<Entry[]> {
    return this.host.chain(roomId, fromSeq, limit, askingServer);
  }
  currentState(roomId: string, askingServer: string): Promise<{ seq: number; entries: Entry[] }> {
    return this.host.currentState(roomId, askingServer);
  }

  // ---- participant side ------------------------------------------------------------------

  forgetInvite(roomId: string, userId: string): Promise<void> {
    return this.participant.forgetInvite(roomId, userId);
  }
  hasInvite(roomId: string, userId: string): Promise<boolean> {
    return this.participant.hasInvite(roomId, userId);
  }
  signForRemote(roomId: string, type: string, sender: string, content: Record<string, unknown>, stateKey?: string) {
    return this.participant.signForRemote(roomId, type, sender, content, stateKey);
  }
  join(userId: string, roomId: string, displayname: string | null): Promise<void> {
    return this.participant.joins.join(userId, roomId, displayname);
  }
  submit(roomId: string, event: RoomEvent, onQueued?: () => void): ReturnType<ParticipantRooms['submits']['submit']> {
    return this.participant.submits.submit(roomId, event, onQueued);
  }
  deliverSubmits(host: string, payloads: Array<Record<string, unknown>>): Promise<Array<string | null>> {
    return this.participant.submits.deliverSubmits(host, payloads);
  }
  backfillOlder(roomId: string, from: number): Promise<void> {
    return this.participant.joins.backfillOlder(roomId, from);
  }
  receive(origin: string, raw: unknown): Promise<string | null> {
    return this.participant.pushed.receive(origin, raw);
  }
  receiveMany(origin: string, raws: unknown[]): Promise<Array<string | null>> {
    return this.participant.pushed.receiveMany(origin, raws);
  }
}
