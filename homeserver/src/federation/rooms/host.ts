import { verifyEvent } from '@parley/federation/events';
import type { MembershipChange } from '@parley/federation/room';
import { check, type RoomEvent, RoomEvent as RoomEventSchema } from '@parley/schemas';
import type { Knex } from 'knex';
import type { Db } from '../../db/database.js';
import { forbidden, notFound, ParleyError } from '../../errors.js';
import type { EventRepository, EventRow } from '../../repositories/events.js';
import type { OutboxRepository } from '../../repositories/outbox.js';
import type { RoomRepository, RoomRow } from '../../repositories/rooms.js';
import type { Clock } from '../../services/clock.js';
import type { AppendBatch, RoomLog, SigningIdentity } from '../../services/room-log.js';
import { eventForServer, serverMembershipLog } from '../server-visibility.js';
import type { FederationContext } from '../setup.js';
import {
  type Entry,
  keyRingFor,
  MAX_JOIN_ENTRIES,
  MAX_JOIN_RESPONSE_BYTES,
  MAX_SUBMIT_BATCH,
  RawJson,
  type SubmitResult,
  serverOf,
} from './common.js';

function resultOfError(err: unknown): SubmitResult {
  if (err instanceof ParleyError) return { error: { status: err.status, code: err.code, message: err.message } };
  return { error: { status: 400, code: 'PARLEY_INVALID_PARAM', message: (err as Error).message } };
}

/**
 * The host side of a federated room (docs/protocol.md): the authority for order. It checks what
 * participants' servers submit (origin signature, the auth rules), sequences it, fans every
 * new entry out to the participant servers, and answers joins, backfill and state to servers
 * with a member in the room, with what none of their users may see redacted.
 */
export class HostRooms {
  constructor(
    private readonly db: Db,
    private readonly rooms: RoomRepository,
    private readonly events: EventRepository,
    private readonly outbox: OutboxRepository,
    private readonly log: RoomLog,
    private readonly fed: FederationContext,
    private readonly identity: SigningIdentity,
    private readonly clock: Clock,
    private readonly notify: (servers: Iterable<string>) => void,
    private readonly ttlMs: number,
  ) {}

  /**
   * RoomLog.finish hook (host): the outbox rows that queue every new entry for every
   * participant server, as INSERTs for finish to run in its one statement; the destinations are
   * told once the transaction commits.
   */
  async fanout(room: RoomRow, batch: AppendBatch, trx: Db): Promise<Knex.Sql[]> {
    const { entries } = batch;
    if (entries.length === 0) return [];
    // Read once per state of the room: the batch carries it over while no state event moves it.
    batch.servers ??= await this.rooms.memberServers(room.room_id, trx);
    const servers = new Set(batch.servers);
    for (const e of entries) if (e.target) servers.add(serverOf(e.target));
    servers.delete(this.identity.serverName);
    if (servers.size === 0) return [];
    const now = this.clock.now();
    // One statement for the batch, not one per entry.
    const writes = this.outbox.enqueueQueries(
      [...servers],
      'event',
      entries.map((e) => ({ event: e.event, record: e.record })),
      now,
      this.ttlMs,
      trx,
    );
    const tx = trx as unknown as { executionPromise?: Promise<unknown> };
    void tx.executionPromise?.then(
      () => this.notify(servers),
      () => {},
    );
    return writes;
  }

  /** A participant's server asks to join one of its users (POST rooms/:id/join). */
  async hostJoin(
    origin: string,
    roomId: string,
    raw: unknown,
  ): Promise<{ entries: Entry[]; snapshot?: { state: RawJson; anchor: Entry } }> {
    const { event, eventId } = this.checkIncoming(origin, roomId, raw);
    if (event.type !== 'room.member' || event.content.membership !== 'join' || event.state_key !== event.sender) {
      throw new ParleyError(400, 'PARLEY_INVALID_PARAM', 'a join must be the sender’s own room.member join');
    }
    await this.hostSequence(roomId, event, eventId);
    const room = (await this.rooms.find(roomId)) as RoomRow;
    if (room.current_seq <= this.fed.config.join_full_chain_max) {
      const entries = await this.chain(roomId, 1, MAX_JOIN_ENTRIES, origin);
      // The joining server reads at most MAX_JOIN_RESPONSE_BYTES: a chain of large events goes as a snapshot instead.
      if (entries.reduce((n, e) => n + JSON.stringify(e).length, 0) <= MAX_JOIN_RESPONSE_BYTES / 2) return { entries };
    }
    // A large room: current state as of the anchor, then the recent entries.
    const firstRecent = Math.max(2, room.current_seq - this.fed.config.join_recent_entries + 1);
    const entries = await this.chain(roomId, firstRecent, room.current_seq - firstRecent + 1, origin);
    const [anchor] = await this.chain(roomId, firstRecent - 1, 1, origin);
    // As entryOf would give them (state goes unredacted), as text: thousands of entries are not parsed to be serialised again.
    const state = new RawJson(await this.events.stateBeforeJson(roomId, firstRecent));
    return { snapshot: { state, anchor: anchor as Entry }, entries };
  }

  /**
   * A participant's server submits up to MAX_SUBMIT_BATCH origin-signed events at once: each
   * is checked on its own and the valid ones are sequenced in order in one transaction; the
   * answer has one result per event (its seq, or why it was refused).
   */
  async hostSubmitMany(origin: string, roomId: string, raws: unknown[]): Promise<SubmitResult[]> {
    if (raws.length > MAX_SUBMIT_BATCH)
      throw new ParleyError(413, 'PARLEY_TOO_LARGE', `at most ${MAX_SUBMIT_BATCH} events per submit`, { field: 'events' });
    const results: SubmitResult[] = raws.map(() => ({ error: { status: 500, code: 'PARLEY_INTERNAL', message: 'not handled' } }));
    const valid: Array<{ i: number; event: RoomEvent; id: string }> = [];
    raws.forEach((raw, i) => {
      try {
        const { event, eventId } = this.checkIncoming(origin, roomId, raw);
        valid.push({ i, event, id: eventId });
      } catch (err) {
        results[i] = resultOfError(err);
      }
    });
    const known = new Map((await this.events.findMany(valid.map((v) => v.id))).map((r) => [r.event_id, r.seq]));
    await this.db.transaction(async (trx) => {
      const room = await this.rooms.lock(roomId, trx);
      if (!room || room.host !== this.identity.serverName) throw notFound(`no room ${roomId} hosted here`);
      // Message rows of the batch go in one INSERT (flushed before a redaction reads its target).
      const batch = this.log.begin(room, { deferInserts: true });
      for (const v of valid) {
        const seq = known.get(v.id);
        if (seq !== undefined) {
          results[v.i] = { event_id: v.id, seq }; // a retried submit, or the same event twice in this batch
          continue;
        }
        try {
          let redactedEventSender: string | undefined;
          if (v.event.type === 'room.redaction' && typeof v.event.content.redacts === 'string') {
            await this.log.flush(batch, trx);
            redactedEventSender = (await this.events.find(v.event.content.redacts, trx))?.sender;
          }
          const appended = await this.log.sequence(room, v.event, v.id, trx, redactedEventSender ? { redactedEventSender } : {}, batch);
          known.set(v.id, appended.seq);
          results[v.i] = { event_id: v.id, seq: appended.seq };
        } catch (err) {
          if (!(err instanceof ParleyError)) throw err;
          results[v.i] = resultOfError(err);
        }
      }
      await this.log.finish(batch, trx);
    });
    return results;
  }

  /** A participant's server submits an origin-signed event for sequencing (POST rooms/:id/submit). */
  async hostSubmit(origin: string, roomId: string, raw: unknown): Promise<{ event_id: string; seq: number }> {
    const { event, eventId } = this.checkIncoming(origin, roomId, raw);
    return this.hostSequence(roomId, event, eventId);
  }

  /** The event and its ID (derived once, by the signature check). */
  private checkIncoming(origin: string, roomId: string, raw: unknown): { event: RoomEvent; eventId: string } {
    if (!check(RoomEventSchema, raw).ok) throw new ParleyError(400, 'PARLEY_INVALID_PARAM', 'event is malformed', { field: 'event' });
    const event = raw as RoomEvent;
    if (event.room_id !== roomId)
      throw new ParleyError(400, 'PARLEY_INVALID_PARAM', 'event is for another room', { field: 'event.room_id' });
    if (event.origin !== origin || serverOf(event.sender) !== origin) throw forbidden('a server may only submit events of its own users');
    const verdict = verifyEvent(event, this.keyRing(), { allowRedacted: false });
    if (!verdict.ok) throw new ParleyError(401, 'PARLEY_FED_BAD_SIGNATURE', `event: ${verdict.reason}`);
    return { event, eventId: verdict.eventId };
  }

  private async hostSequence(roomId: string, event: RoomEvent, id: string): Promise<{ event_id: string; seq: number }> {
    const existing = await this.events.find(id);
    if (existing) return { event_id: id, seq: existing.seq }; // a retried submit
    return this.db.transaction(async (trx) => {
      const room = await this.rooms.lock(roomId, trx);
      if (!room || room.host !== this.identity.serverName) throw notFound(`no room ${roomId} hosted here`);
      let redactedEventSender: string | undefined;
      if (event.type === 'room.redaction' && typeof event.content.redacts === 'string') {
        redactedEventSender = (await this.events.find(event.content.redacts, trx))?.sender;
      }
      const batch = this.log.begin(room, { deferInserts: true });
      const appended = await this.log.sequence(room, event, id, trx, redactedEventSender ? { redactedEventSender } : {}, batch);
      await this.log.finish(batch, trx);
      return { event_id: id, seq: appended.seq };
    });
  }

  /** Entries from `fromSeq` (GET rooms/:id/events), for servers with a member in the room. */
  async chain(roomId: string, fromSeq: number, limit: number, askingServer?: string): Promise<Entry[]> {
    const room = await this.rooms.find(roomId);
    if (!room) throw notFound(`no room ${roomId}`);
    if (askingServer && !(await this.rooms.memberServers(roomId)).includes(askingServer))
      throw forbidden(`${askingServer} has no member in ${roomId}`);
    const rows = await this.events.range(roomId, fromSeq, Math.min(room.current_seq, fromSeq + limit - 1));
    if (!askingServer) return rows.map((r) => this.entryOf(r));
    // What none of the asking server's users may see goes redacted (L7).
    const log = serverMembershipLog(await this.rooms.membershipLogOfServer(roomId, askingServer));
    return rows.map((r) => this.entryOf(r, log));
  }

  /** Current state of a room we host (GET rooms/:id/state), for servers with a member in it. */
  async currentState(roomId: string, askingServer: string): Promise<{ seq: number; entries: Entry[] }> {
    const room = await this.rooms.find(roomId);
    if (!room || room.host !== this.identity.serverName) throw notFound(`no room ${roomId} hosted here`);
    if (!(await this.rooms.memberServers(roomId)).includes(askingServer)) throw forbidden(`${askingServer} has no member in ${roomId}`);
    const rows = await this.events.stateBefore(roomId, room.current_seq + 1);
    return { seq: room.current_seq, entries: rows.map((r) => this.entryOf(r)) };
  }

  private entryOf(r: EventRow, serverLog?: MembershipChange[]): Entry {
    const event = serverLog ? eventForServer(serverLog, r.event, r.seq, r.visibility) : r.event;
    return { event, record: r.record, meta: { visibility: r.visibility, redacted_by: r.redacted_by } };
  }

  private keyRing() {
    return keyRingFor(this.fed, this.identity);
  }
}
