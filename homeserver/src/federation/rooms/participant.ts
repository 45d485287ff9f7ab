import { verifyChain } from '@parley/federation/chain';
import { eventId as computeEventId, recordHash, signEvent, verifyEvent, verifyRecord } from '@parley/federation/events';
import type { KeyRing } from '@parley/federation/keys';
import { authorize, type StateMap, stateKey as stateMapKey } from '@parley/federation/room';
import { check, type Membership, type RoomEvent, RoomEvent as RoomEventSchema, SeqRecord as SeqRecordSchema } from '@parley/schemas';
import type { Db } from '../../db/database.js';
import { forbidden, notFound, ParleyError } from '../../errors.js';
import type { Logger } from '../../logger.js';
import type { EventRepository, EventRow } from '../../repositories/events.js';
import type { OutboxRepository } from '../../repositories/outbox.js';
import type { RemoteInviteRepository } from '../../repositories/room-extras.js';
import type { RoomRepository, RoomRow } from '../../repositories/rooms.js';
import type { Clock } from '../../services/clock.js';
import { type RoomLog, relationOf, type SigningIdentity } from '../../services/room-log.js';
import type { StreamWriter } from '../../services/stream-bus.js';
import { BACKFILL_PAGE, BACKFILL_PAGE_BYTES, BackfillBudget, RoomBackfillGate, TRANSACTION_BACKFILL } from '../backfill-limits.js';
import type { FederationContext } from '../setup.js';
import { type Entry, keyRingFor, MAX_JOIN_ENTRIES, MAX_JOIN_RESPONSE_BYTES, MAX_SUBMIT_BATCH, type Snapshot, serverOf } from './common.js';

const VISIBILITIES = new Set(['world_readable', 'shared', 'invited', 'joined']);

/** A 4xx from the host (other than timeouts and rate limits) is its final word on an event. */
function isRefusal(err: unknown): boolean {
  const status = (err as { status?: number }).status;
  return typeof status === 'number' && status >= 400 && status < 500 && status !== 408 && status !== 429;
}

type SubmitOutcome =
  | { kind: 'sequenced'; event_id: string; seq: number }
  | { kind: 'queued'; event_id: string }
  | { kind: 'refused'; status: number; message: string; code?: string };

interface SubmitLane {
  queue: Array<{ event: RoomEvent; resolve: (outcome: SubmitOutcome) => void }>;
  running: boolean;
}

function outcomeOf(raw: unknown, host: string): SubmitOutcome {
  const r = raw as { event_id?: unknown; seq?: unknown; error?: { status?: unknown; message?: unknown } };
  if (typeof r?.event_id === 'string' && Number.isSafeInteger(r.seq))
    return { kind: 'sequenced', event_id: r.event_id, seq: r.seq as number };
  const status = typeof r?.error?.status === 'number' && r.error.status >= 400 && r.error.status < 500 ? r.error.status : 400;
  const message = typeof r?.error?.message === 'string' ? r.error.message.slice(0, 500) : `${host} refused the event`;
  const code = (r?.error as { code?: unknown } | undefined)?.code;
  // E2E refusals the client acts on (retry in the new epoch, encrypt) keep their code.
  if (code === 'PARLEY_MLS_STALE_EPOCH' || code === 'PARLEY_ROOM_ENCRYPTED') return { kind: 'refused', status, message, code };
  return { kind: 'refused', status, message };
}

function refusalMessage(err: unknown): string | undefined {
  return (err as { body?: { error?: { message?: string } } }).body?.error?.message;
}
const MAX_CONCURRENT_JOINS = 3;
const JOIN_RETRY_AFTER_MS = 5_000;
// A reader asked for older history while the room's backfill is busy or out of pages.
const OLDER_RETRY_AFTER_MS = 6_000;
// How long a participant's answer to a submit waits for the host's fan-out to bring it back.
const ARRIVAL_WAIT_MS = 2_000;

/**
 * The participant side of a federated room (docs/protocol.md): the host is trusted for order and
 * nothing else. Every entry is verified (origin and host signatures, content hash, seq,
 * `prev`, auth rules) before it is stored; joins, snapshots and backfill are verified the same
 * way, and every exchange the host drives is bounded (backfill-limits.ts). Our users' events
 * go to the host for sequencing, in order, queued while it is down.
 */
export class ParticipantRooms {
  constructor(
    private readonly db: Db,
    private readonly rooms: RoomRepository,
    private readonly events: EventRepository,
    private readonly outbox: OutboxRepository,
    private readonly log: RoomLog,
    private readonly fed: FederationContext,
    private readonly identity: SigningIdentity,
    private readonly clock: Clock,
    private readonly logger: Logger,
    private readonly notify: (servers: Iterable<string>) => void,
    private readonly ttlMs: number,
    private readonly invites: RemoteInviteRepository,
    private readonly writer: StreamWriter,
  ) {}

  async forgetInvite(roomId: string, userId: string): Promise<void> {
    await this.invites.delete(roomId, userId);
  }

  /** Whether `userId` holds a pending invite to `roomId` (a room this server is not in). */
  async hasInvite(roomId: string, userId: string): Promise<boolean> {
    return (await this.invites.find(roomId, userId)) !== undefined;
  }

  /**
   * An invite for one of our users to a room we do not take part in: both signatures are
   * checked, then it is kept (and shown on the user's stream) until they join or decline.
   */
  private async receiveInvite(origin: string, entry: Entry): Promise<string | null> {
    const { event, record } = entry;
    const invitee = event.state_key ?? '';
    if (serverOf(record.room_id) !== origin) return `${origin} is not the host of ${record.room_id}`;
    await this.prefetchKeys([entry], origin);
    const ring = this.keyRing();
    const id = computeEventId(event);
    if (record.event_id !== id) return 'record names another event';
    const rec = verifyRecord(record, origin, ring);
    if (!rec.ok) return `record: ${rec.reason}`;
    const ev = verifyEvent(event, ring, { allowRedacted: false });
    if (!ev.ok) return `event: ${ev.reason}`;
    await this.invites.put({
      room_id: record.room_id,
      user_id: invitee,
      inviter: event.sender,
      event: event as unknown as Record<string, unknown>,
      created_ts: this.clock.now(),
    });
    const clientEvent = {
      event_id: id,
      room_id: record.room_id,
      seq: record.seq,
      type: event.type,
      state_key: invitee,
      sender: event.sender,
      origin_ts: event.origin_ts,
      content: event.content,
    };
    await this.writer.writeNow(this.db, [
      {
        kind: 'event',
        room_id: null,
        private: false,
        user_id: invitee,
        device_id: null,
        room_ids: null,
        data: { event_id: id, event: clientEvent },
      },
    ]);
    return null;
  }

  /** Signs an event as this server (the origin) for a room hosted elsewhere. */
  signForRemote(
    roomId: string,
    type: string,
    sender: string,
    content: Record<string, unknown>,
    stateKey?: string,
  ): { event: RoomEvent; eventId: string } {
    try {
      return signEvent(
        {
          room_id: roomId,
          type,
          ...(stateKey !== undefined ? { state_key: stateKey } : {}),
          sender,
          origin: this.identity.serverName,
          origin_ts: this.clock.now(),
          lamport: 0,
          content,
        },
        this.identity.serverName,
        this.identity,
      );
    } catch (err) {
      throw new ParleyError(400, 'PARLEY_INVALID_PARAM', (err as Error).message, { field: 'content' });
    }
  }

  /** Joins a room hosted on another server and stores its verified chain. */
  async join(userId: string, roomId: string, displayname: string | null): Promise<void> {
    // Two first joins of one room at once: the second waits for the first to store the room,
    // then joins like any later member (a submit), instead of storing the room twice.
    const pending = this.joining.get(roomId);
    if (pending) {
      await pending.catch(() => {});
      if (await this.rooms.find(roomId)) {
        await this.submit(roomId, this.signForRemote(roomId, 'room.member', userId, { membership: 'join', displayname }, userId).event);
        await this.invites.delete(roomId, userId);
        return;
      }
    }
    // Each first join buffers and verifies a whole join response: only a few at once (M6).
    if (this.joining.size >= MAX_CONCURRENT_JOINS)
      throw new ParleyError(
        503,
        'PARLEY_UNAVAILABLE',
        `this server is joining ${MAX_CONCURRENT_JOINS} remote rooms already; retry shortly`,
        {
          retryAfterMs: JOIN_RETRY_AFTER_MS,
        },
      );
    const first = this.firstJoin(userId, roomId, displayname);
    this.joining.set(roomId, first);
    try {
      await first;
    } finally {
      if (this.joining.get(roomId) === first) this.joining.delete(roomId);
    }
  }

  private readonly joining = new Map<string, Promise<void>>();

  private async firstJoin(userId: string, roomId: string, displayname: string | null): Promise<void> {
    const host = serverOf(roomId);
    const { event } = this.signForRemote(roomId, 'room.member', userId, { membership: 'join', displayname }, userId);
    let res: { body: unknown };
    try {
      res = await this.fed.client.request({
        destination: host,
        method: 'POST',
        path: `/federation/v1/rooms/${encodeURIComponent(roomId)}/join`,
        body: { event },
        maxBytes: MAX_JOIN_RESPONSE_BYTES,
      });
    } catch (err) {
      const status = (err as { status?: number }).status;
      if (status === 403) throw forbidden(`${host} refused the join`);
      if (status === 404) throw notFound(`${host} has no room ${roomId}`);
      if ((err as { kind?: string }).kind === 'too_large')
        throw new ParleyError(502, 'PARLEY_UNAVAILABLE', `${host} answered the join with more than ${MAX_JOIN_RESPONSE_BYTES} bytes`);
      throw new ParleyError(502, 'PARLEY_UNAVAILABLE', `could not reach ${host}: ${(err as Error).message}`);
    }
    const body = res.body as { entries?: unknown; snapshot?: { state?: unknown; anchor?: unknown } };
    const entries = this.parseEntries(body?.entries);
    if (body?.snapshot) await this.storeSnapshot(roomId, host, this.parseSnapshot(body.snapshot), entries);
    else await this.storeChain(roomId, host, entries);
    await this.invites.delete(roomId, userId);
  }

  /**
   * Sends an event of a remote room to its host for sequencing; answers with its seq. When
   * the host cannot be reached (or earlier events for it are still queued, to keep their
   * order) the event waits in the outbox as a `submit` row and the answer says `queued`.
   */
  /**
   * `onQueued` is called once the event has its place in the room's line (the submit lane or
   * the outbox), so a caller can let the next send of the same device in behind it.
   */
  async submit(roomId: string, event: RoomEvent, onQueued?: () => void): Promise<{ event_id: string; seq?: number; queued?: boolean }> {
    const host = serverOf(roomId);
    if (await this.outbox.hasPending(host, 'submit')) {
      const queued = await this.queueSubmit(host, event);
      onQueued?.();
      return queued;
    }
    const outcome = await new Promise<SubmitOutcome>((resolve) => {
      const lane = this.lanes.get(roomId) ?? { queue: [], running: false };
      this.lanes.set(roomId, lane);
      lane.queue.push({ event, resolve });
      onQueued?.();
      if (!lane.running) void this.drainLane(roomId, lane);
    });
    if (outcome.kind === 'queued') return { event_id: outcome.event_id, queued: true };
    if (outcome.kind === 'refused') {
      const { status, message } = outcome;
      if (outcome.code === 'PARLEY_MLS_STALE_EPOCH' || outcome.code === 'PARLEY_ROOM_ENCRYPTED')
        throw new ParleyError(status, outcome.code, message, { field: outcome.code === 'PARLEY_MLS_STALE_EPOCH' ? 'epoch' : 'type' });
      if (status === 403) throw forbidden(message);
      if (status === 404) throw notFound(message);
      if (status >= 500) throw new ParleyError(503, 'PARLEY_UNAVAILABLE', message);
      throw new ParleyError(400, 'PARLEY_INVALID_PARAM', `${host} refused the event: ${message}`);
    }
    await this.arrival(outcome.event_id);
    return { event_id: outcome.event_id, seq: outcome.seq };
  }

  /**
   * Submits to one room travel in order, as batches of up to MAX_SUBMIT_BATCH: while one
   * request is in flight the next sends gather behind it (group submit), so a busy room costs
   * one round trip per batch instead of one per event. If the host cannot be reached, the
   * batch and everything behind it are queued in the outbox, in order.
   */
  private async drainLane(roomId: string, lane: SubmitLane): Promise<void> {
    lane.running = true;
    const host = serverOf(roomId);
    try {
      let unreachable = false;
      while (lane.queue.length > 0) {
        const batch = lane.queue.splice(0, MAX_SUBMIT_BATCH);
        if (!unreachable) {
          try {
            const res = await this.fed.client.request({
              destination: host,
              method: 'POST',
              path: `/federation/v1/rooms/${encodeURIComponent(roomId)}/submit`,
              body: { events: batch.map((b) => b.event) },
              maxBytes: 1024 * 1024,
            });
            const results = (res.body as { results?: unknown })?.results;
            if (!Array.isArray(results) || results.length !== batch.length)
              throw new Error(`${host} answered a submit with a malformed body`);
            for (const [i, b] of batch.entries()) b.resolve(outcomeOf(results[i], host));
            continue;
          } catch (err) {
            if (isRefusal(err)) {
              const message = refusalMessage(err) ?? `${host} refused the events`;
              for (const b of batch) b.resolve({ kind: 'refused', status: (err as { status: number }).status, message });
              continue;
            }
            unreachable = true;
            this.logger.info({ room_id: roomId, host, err: (err as Error).message }, 'room host unreachable; events queued');
          }
        }
        for (const b of batch) {
          try {
            b.resolve({ kind: 'queued', event_id: (await this.queueSubmit(host, b.event)).event_id });
          } catch (err) {
            b.resolve({ kind: 'refused', status: 500, message: `could not queue the event: ${(err as Error).message}` });
          }
        }
      }
    } catch (err) {
      for (const b of lane.queue.splice(0)) b.resolve({ kind: 'refused', status: 500, message: (err as Error).message });
      this.logger.error({ room_id: roomId, err: (err as Error).message }, 'submit lane failed');
    } finally {
      lane.running = false;
      if (lane.queue.length === 0) this.lanes.delete(roomId);
      else void this.drainLane(roomId, lane);
    }
  }

  private readonly lanes = new Map<string, SubmitLane>();

  /**
   * Waits (briefly) until the host's fan-out has brought a submitted event back, so a client
   * answered with its seq can read it here at once; answers anyway after ARRIVAL_WAIT_MS.
   */
  private async arrival(eventId: string): Promise<void> {
    let wake = () => {};
    const arrived = new Promise<void>((resolve) => {
      wake = resolve;
    });
    const list = this.arrivals.get(eventId) ?? [];
    list.push(wake);
    this.arrivals.set(eventId, list);
    let timer: NodeJS.Timeout | undefined;
    try {
      if (await this.events.find(eventId)) return;
      await Promise.race([arrived, new Promise<void>((resolve) => (timer = setTimeout(resolve, ARRIVAL_WAIT_MS)))]);
    } finally {
      clearTimeout(timer);
      const rest = (this.arrivals.get(eventId) ?? []).filter((w) => w !== wake);
      if (rest.length > 0) this.arrivals.set(eventId, rest);
      else this.arrivals.delete(eventId);
    }
  }

  private readonly arrivals = new Map<string, Array<() => void>>();

  private arrived(eventIds: Iterable<string>): void {
    for (const id of eventIds) for (const wake of this.arrivals.get(id) ?? []) wake();
  }

  private async queueSubmit(host: string, event: RoomEvent): Promise<{ event_id: string; queued: true }> {
    await this.db.transaction((trx) => this.outbox.enqueue([host], 'submit', { event }, this.clock.now(), this.ttlMs, trx));
    this.notify([host]);
    return { event_id: computeEventId(event), queued: true };
  }

  /** Delivery of queued submits of one room (DeliveryEngine.submitter), in one request: per event null when sequenced, the reason when refused for good. */
  async deliverSubmits(host: string, payloads: Array<Record<string, unknown>>): Promise<Array<string | null>> {
    const events = payloads.map((p) => p.event as RoomEvent);
    const roomId = events[0]?.room_id ?? '';
    try {
      const res = await this.fed.client.request({
        destination: host,
        method: 'POST',
        path: `/federation/v1/rooms/${encodeURIComponent(roomId)}/submit`,
        body: { events },
        maxBytes: 1024 * 1024,
      });
      const results = (res.body as { results?: unknown })?.results;
      if (!Array.isArray(results) || results.length !== events.length) throw new Error(`${host} answered a submit with a malformed body`);
      return results.map((r) => {
        const outcome = outcomeOf(r, host);
        return outcome.kind === 'refused' ? outcome.message : null;
      });
    } catch (err) {
      if (isRefusal(err)) return events.map(() => refusalMessage(err) ?? `refused with ${(err as { status: number }).status}`);
      throw err;
    }
  }

  private parseEntries(raw: unknown): Entry[] {
    if (!Array.isArray(raw) || raw.length > MAX_JOIN_ENTRIES)
      throw new ParleyError(502, 'PARLEY_UNAVAILABLE', 'the host answered with a malformed chain');
    return raw.map((e) => {
      const ok = check(RoomEventSchema, (e as Entry)?.event).ok && check(SeqRecordSchema, (e as Entry)?.record).ok;
      if (!ok) throw new ParleyError(502, 'PARLEY_UNAVAILABLE', 'the host answered with a malformed entry');
      return e as Entry;
    });
  }

  private parseSnapshot(raw: { state?: unknown; anchor?: unknown }): Snapshot {
    const state = this.parseEntries(raw.state);
    const [anchor] = this.parseEntries([raw.anchor]);
    return { state, anchor: anchor as Entry };
  }

  /**
   * Joins a large room from the host's state snapshot: every state entry and the anchor (the
   * entry just before the recent ones) carry valid host and origin signatures; the recent
   * entries are then verified as a chain continuing from the anchor, with the auth rules
   * replayed over the snapshot state. Older history is backfilled on demand.
   */
  private async storeSnapshot(roomId: string, host: string, snapshot: Snapshot, recent: Entry[]): Promise<void> {
    const { anchor } = snapshot;
    const refuse = (reason: string): never => {
      this.logger.warn({ room_id: roomId, host, reason }, 'refused a room snapshot');
      throw new ParleyError(502, 'PARLEY_UNAVAILABLE', `the state snapshot from ${host} does not verify: ${reason}`);
    };
    await this.prefetchKeys([...snapshot.state, anchor, ...recent], host);
    const ring = this.keyRing();
    const keys = new Set<string>();
    const stateMap: StateMap = new Map();
    for (const entry of [...snapshot.state, anchor]) {
      const problem = this.checkSigned(entry, host, roomId, ring);
      if (problem) refuse(`seq ${entry.record.seq}: ${problem}`);
      if (entry.record.seq > anchor.record.seq) refuse(`state entry at seq ${entry.record.seq} is after the anchor`);
      if (entry === anchor) continue;
      if (entry.event.state_key === undefined) refuse(`seq ${entry.record.seq} is not a state event`);
      const key = stateMapKey(entry.event.type, entry.event.state_key as string);
      if (keys.has(key)) refuse(`two state entries for ${key}`);
      keys.add(key);
      stateMap.set(key, entry.event);
    }
    const create = snapshot.state.find((e) => e.event.type === 'room.create');
    if (create?.record.seq !== 1) refuse('no room.create at seq 1');
    if (anchor.event.state_key !== undefined && anchor.record.seq !== (create as Entry).record.seq) {
      // The anchor, when a state event, is the current holder of its key.
      const held = stateMap.get(stateMapKey(anchor.event.type, anchor.event.state_key));
      if (held && computeEventId(held) !== anchor.record.event_id) refuse('the anchor is a state event the snapshot does not hold');
    }
    const verdict = verifyChain(recent, ring, authorize, {
      roomId,
      after: { seq: anchor.record.seq, head: recordHash(anchor.record), state: stateMap },
    });
    if (!verdict.ok) refuse(`recent entries at seq ${verdict.seq}: ${verdict.reason}`);

    const createEvent = (create as Entry).event;
    await this.db.transaction(async (trx) => {
      if (await this.rooms.lock(roomId, trx)) throw new ParleyError(409, 'PARLEY_INVALID_PARAM', `${roomId} is already known here`);
      const room: RoomRow = {
        room_id: roomId,
        host,
        creator: String(createEvent.content.creator ?? createEvent.sender),
        kind: createEvent.content.kind === 'space' ? 'space' : 'room',
        parent_id: null,
        published: false,
        current_seq: anchor.record.seq,
        head_hash: recordHash(anchor.record),
        lamport: Math.max(...[...snapshot.state, anchor].map((e) => e.event.lamport)),
        created_ts: this.clock.now(),
        history_from: anchor.record.seq,
      };
      await this.rooms.insert(room, trx);
      const rows = [...snapshot.state, anchor].map((e) => this.rowOf(e));
      await this.events.insertMissing(rows, trx);
      await this.rooms.putSnapshot(
        roomId,
        snapshot.state.map((e) => ({
          type: e.event.type,
          state_key: e.event.state_key as string,
          event_id: e.record.event_id,
          seq: e.record.seq,
          ...(e.event.type === 'room.member' ? { membership: e.event.content.membership as Membership } : {}),
        })),
        trx,
      );
      const batch = this.log.begin(room);
      for (const e of recent) {
        let redactedSender: string | undefined;
        if (e.event.type === 'room.redaction' && typeof e.event.content.redacts === 'string')
          redactedSender = (await this.events.find(e.event.content.redacts, trx))?.sender ?? this.senderOfRedacted(recent, e.event);
        await this.log.applyRemote(room, e.event, e.record.event_id, e.record, trx, batch, redactedSender);
      }
      await this.log.finish(batch, trx);
    });
  }

  /** Record (host) and event (origin) signatures, content hash (redacted copies pass), event ID, room. */
  private checkSigned(entry: Entry, host: string, roomId: string, ring: KeyRing): string | null {
    if (entry.record.room_id !== roomId || entry.event.room_id !== roomId) return 'entry of another room';
    if (computeEventId(entry.event) !== entry.record.event_id) return 'record names another event';
    const rec = verifyRecord(entry.record, host, ring);
    if (!rec.ok) return `record: ${rec.reason}`;
    const ev = verifyEvent(entry.event, ring, { allowRedacted: true });
    return ev.ok ? null : `event: ${ev.reason}`;
  }

  /** A row for an entry stored out of order (snapshot, backfill below the complete part). */
  private rowOf(e: Entry): EventRow {
    const relation = relationOf(e.event.content);
    const visibility = e.meta?.visibility && VISIBILITIES.has(e.meta.visibility) ? e.meta.visibility : 'shared';
    return {
      event_id: e.record.event_id,
      room_id: e.record.room_id,
      seq: e.record.seq,
      type: e.event.type,
      state_key: e.event.state_key ?? null,
      sender: e.event.sender,
      origin_ts: e.event.origin_ts,
      event: e.event,
      record: e.record,
      visibility,
      redacted_by: typeof e.meta?.redacted_by === 'string' ? e.meta.redacted_by : null,
      rel_type: relation?.type ?? null,
      rel_event_id: relation?.event_id ?? null,
      rel_key: relation?.key ?? null,
    };
  }

  /**
   * History below a snapshot join, fetched when someone pages back past `history_from`:
   * entries [from, history_from) are checked (signatures, and each record's hash is the
   * `prev` of the one after it, down from the first entry we hold), then stored.
   */
  async backfillOlder(roomId: string, from: number): Promise<void> {
    const room = await this.rooms.find(roomId);
    const floor = room?.history_from ?? 1;
    if (!room || room.host === this.identity.serverName || floor <= 1 || from >= floor) return;
    // One page at a time (at most BACKFILL_PAGE entries and BACKFILL_PAGE_BYTES), within the
    // room's own rate: a reader paging down through history it may not see cannot make this
    // server fetch the whole room from its host in one go.
    const start = Math.max(1, from, floor - BACKFILL_PAGE);
    // Readers of one room share one fetch: a second one waits for it, then reads what it stored.
    const running = this.olderInFlight.get(roomId);
    if (running) return running.catch(() => {});
    const refused = (why: string) =>
      new ParleyError(503, 'PARLEY_UNAVAILABLE', `older history of ${roomId} is not fetched now: ${why}`, {
        retryAfterMs: OLDER_RETRY_AFTER_MS,
      });
    const busy = this.olderGate.enter(roomId);
    if (busy) throw refused(busy);
    if (!this.olderGate.takePage(roomId)) {
      this.olderGate.leave(roomId, false);
      throw refused('this room used its backfill rate');
    }
    const fetch = this.fetchOlder(room, start, floor);
    this.olderInFlight.set(roomId, fetch);
    try {
      await fetch;
      this.olderGate.leave(roomId, false);
    } catch (err) {
      this.olderGate.leave(roomId, true);
      throw err;
    } finally {
      this.olderInFlight.delete(roomId);
    }
  }

  private readonly olderGate = new RoomBackfillGate(() => this.clock.now());
  private readonly olderInFlight = new Map<string, Promise<void>>();

  private async fetchOlder(room: RoomRow, start: number, floor: number): Promise<void> {
    const roomId = room.room_id;
    const res = await this.fed.client.request({
      destination: room.host,
      method: 'GET',
      path: `/federation/v1/rooms/${encodeURIComponent(roomId)}/events?from_seq=${start}&limit=${floor - start}`,
      maxBytes: BACKFILL_PAGE_BYTES,
      timeoutMs: 30_000,
    });
    const raw = (res.body as { entries?: unknown })?.entries;
    if (Array.isArray(raw) && raw.length > floor - start)
      throw new ParleyError(502, 'PARLEY_UNAVAILABLE', `backfill from ${room.host}: ${raw.length} entries for a page of ${floor - start}`);
    const entries = this.parseEntries(raw);
    const [above] = await this.events.range(roomId, floor, floor);
    if (!above) throw new ParleyError(502, 'PARLEY_UNAVAILABLE', `the log of ${roomId} has no entry at ${floor}`);
    await this.prefetchKeys(entries, room.host);
    const ring = this.keyRing();
    let next = above.record;
    for (let i = entries.length - 1; i >= 0; i--) {
      const e = entries[i] as Entry;
      const bad = (why: string) =>
        new ParleyError(502, 'PARLEY_UNAVAILABLE', `backfill from ${room.host} failed at seq ${e.record.seq}: ${why}`);
      if (e.record.seq !== next.seq - 1) throw bad(`expected seq ${next.seq - 1}`);
      if (recordHash(e.record) !== next.prev) throw bad('its hash is not the prev of the entry after it');
      const problem = this.checkSigned(e, room.host, roomId, ring);
      if (problem) throw bad(problem);
      next = e.record;
    }
    if (next.seq !== start) throw new ParleyError(502, 'PARLEY_UNAVAILABLE', `backfill from ${room.host} stopped at seq ${next.seq}`);
    await this.db.transaction(async (trx) => {
      await this.events.insertMissing(
        entries.map((e) => this.rowOf(e)),
        trx,
      );
      await this.rooms.setHistoryFrom(roomId, start, trx);
    });
  }

  private async prefetchKeys(entries: Entry[], host: string): Promise<void> {
    const servers = new Set([host, ...entries.map((e) => e.event.origin)]);
    await Promise.all([...servers].map((s) => (s === this.identity.serverName ? Promise.resolve(true) : this.fed.keyStore.prefetch(s))));
  }

  private keyRing(): KeyRing {
    return keyRingFor(this.fed, this.identity);
  }

  /** Verifies a whole chain from seq 1 and stores it as a new room hosted by `host`. */
  private async storeChain(roomId: string, host: string, entries: Entry[]): Promise<void> {
    await this.prefetchKeys(entries, host);
    const verdict = verifyChain(entries, this.keyRing(), authorize, { roomId });
    if (!verdict.ok) {
      this.logger.warn({ room_id: roomId, host, ...verdict }, 'refused a room chain');
      throw new ParleyError(502, 'PARLEY_UNAVAILABLE', `the chain from ${host} does not verify at seq ${verdict.seq}: ${verdict.reason}`);
    }
    const create = entries[0]?.event;
    await this.db.transaction(async (trx) => {
      let room = await this.rooms.lock(roomId, trx);
      if (!room) {
        const row: RoomRow = {
          room_id: roomId,
          host,
          creator: String(create?.content.creator ?? create?.sender ?? ''),
          kind: create?.content.kind === 'space' ? 'space' : 'room',
          parent_id: null,
          published: false,
          current_seq: 0,
          head_hash: null,
          lamport: 0,
          created_ts: this.clock.now(),
        };
        await this.rooms.insert(row, trx);
        room = row;
      }
      const batch = this.log.begin(room);
      for (const e of entries)
        if (e.record.seq > room.current_seq)
          await this.log.applyRemote(room, e.event, e.record.event_id, e.record, trx, batch, this.senderOfRedacted(entries, e.event));
      await this.log.finish(batch, trx);
    });
  }

  private senderOfRedacted(entries: Entry[], event: RoomEvent): string | undefined {
    if (event.type !== 'room.redaction') return undefined;
    const target = entries.find((e) => e.record.event_id === event.content.redacts);
    return target?.event.sender;
  }

  /** Entries the host pushed (PUT send): applied in order; a gap is backfilled first, within `budget`. */
  async receive(origin: string, raw: unknown, budget = this.transactionBudget()): Promise<string | null> {
    const parsed = check(RoomEventSchema, (raw as Entry)?.event).ok && check(SeqRecordSchema, (raw as Entry)?.record).ok;
    if (!parsed) return 'not an event with its sequencing record';
    const { event, record } = raw as Entry;
    const room = await this.rooms.find(record.room_id);
    if (!room) {
      const invitesOurs =
        event.type === 'room.member' &&
        event.content.membership === 'invite' &&
        serverOf(event.state_key ?? '') === this.identity.serverName;
      return invitesOurs ? this.receiveInvite(origin, { event, record }) : `this server is not in ${record.room_id}`;
    }
    if (room.host !== origin) return `${origin} is not the host of ${record.room_id}`;
    if (record.seq <= room.current_seq) return null; // already have it (at-least-once delivery)
    if (record.seq > room.current_seq + 1) {
      const problem =
        (await this.verifyPushed(room.room_id, origin, { event, record })) ??
        (await this.backfill(room.room_id, origin, record.seq - 1, budget));
      if (problem) return problem;
    }
    return this.applyOne(room.room_id, origin, { event, record });
  }

  /**
   * The entries of one pushed transaction, in order: runs of consecutive entries for one room
   * are verified and then applied in one database transaction (group apply); anything else
   * goes through receive(). Answers one problem (or null) per entry.
   */
  async receiveMany(origin: string, raws: unknown[]): Promise<Array<string | null>> {
    const results: Array<string | null> = raws.map(() => null);
    // One allowance for the whole transaction: its cost is bounded whatever its entries say.
    const budget = this.transactionBudget();
    const isEntry = (raw: unknown) => check(RoomEventSchema, (raw as Entry)?.event).ok && check(SeqRecordSchema, (raw as Entry)?.record).ok;
    for (let i = 0; i < raws.length; ) {
      // Past its time, the rest of a transaction is answered unread rather than making the sender time out.
      if (budget.timeLeft() <= 0) {
        for (let k = i; k < raws.length; k++) results[k] = 'not processed: this transaction used its time';
        break;
      }
      const first = raws[i] as Entry;
      const room = isEntry(first) ? await this.rooms.find(first.record.room_id) : undefined;
      if (!room || room.host !== origin) {
        results[i] = await this.receive(origin, first, budget);
        i++;
        continue;
      }
      let j = i + 1;
      while (j < raws.length && j - i < 100 && isEntry(raws[j]) && (raws[j] as Entry).record.room_id === room.room_id) j++;
      const run = raws.slice(i, j) as Entry[];
      const head = run[0] as Entry;
      if (head.record.seq > room.current_seq + 1) {
        // A gap: act on it only for an entry that verifies, and only within the budget.
        const unverified = await this.verifyPushed(room.room_id, origin, head);
        if (unverified) {
          results[i] = unverified;
          i++;
          continue;
        }
        const missing = await this.backfill(room.room_id, origin, head.record.seq - 1, budget);
        if (missing) {
          for (let k = i; k < j; k++) results[k] = missing;
          i = j;
          continue;
        }
      }
      const problems = await this.applyRun(room.room_id, origin, run);
      problems.forEach((p, k) => {
        results[i + k] = p;
      });
      i = j;
    }
    return results;
  }

  /** Verifies a run of entries of one room and applies the longest valid prefix in one transaction; the rest one by one. */
  private async applyRun(roomId: string, host: string, run: Entry[], allowRedacted = false): Promise<Array<string | null>> {
    if (run.length === 1) return [await this.applyOne(roomId, host, run[0] as Entry, allowRedacted)];
    await this.prefetchKeys(run, host);
    const ring = this.keyRing();
    const verified: Array<{ entry: Entry; id: string }> = [];
    for (const entry of run) {
      const id = computeEventId(entry.event);
      if (
        entry.record.event_id !== id ||
        !verifyRecord(entry.record, host, ring).ok ||
        !verifyEvent(entry.event, ring, { allowRedacted }).ok
      )
        break;
      verified.push({ entry, id });
    }
    const applied: string[] = [];
    await this.db.transaction(async (trx) => {
      const room = (await this.rooms.lock(roomId, trx)) as RoomRow;
      const batch = this.log.begin(room);
      for (const { entry, id } of verified) {
        if (entry.record.seq <= room.current_seq) {
          applied.push(id);
          continue;
        }
        if (entry.record.seq !== room.current_seq + 1 || entry.record.prev !== room.head_hash) break;
        let redactedSender: string | undefined;
        if (entry.event.type === 'room.redaction' && typeof entry.event.content.redacts === 'string')
          redactedSender = (await this.events.find(entry.event.content.redacts, trx))?.sender;
        try {
          await this.log.applyRemote(room, entry.event, id, entry.record, trx, batch, redactedSender);
        } catch (err) {
          if (err instanceof ParleyError) break; // refused by the rules (nothing written): judged alone below
          throw err;
        }
        applied.push(id);
      }
      await this.log.finish(batch, trx);
    });
    this.arrived(applied);
    const results: Array<string | null> = run.map(() => null);
    for (let k = applied.length; k < run.length; k++) results[k] = await this.applyOne(roomId, host, run[k] as Entry, allowRedacted);
    return results;
  }

  /**
   * Pushed entries come whole; backfilled ones may come redacted (a redaction, or history its
   * server's users may not see): the event ID is over the redacted form, so they still verify.
   */
  private async applyOne(roomId: string, host: string, entry: Entry, allowRedacted = false): Promise<string | null> {
    const problem = await this.verifyPushed(roomId, host, entry, allowRedacted);
    if (problem) return problem;
    const id = entry.record.event_id;
    try {
      await this.db.transaction(async (trx) => {
        const room = (await this.rooms.lock(roomId, trx)) as RoomRow;
        if (entry.record.seq <= room.current_seq) return;
        if (entry.record.seq !== room.current_seq + 1 || entry.record.prev !== room.head_hash) {
          throw new ParleyError(409, 'PARLEY_INVALID_PARAM', `seq ${entry.record.seq} does not follow ${room.current_seq} (prev mismatch)`);
        }
        const batch = this.log.begin(room);
        let redactedSender: string | undefined;
        if (entry.event.type === 'room.redaction' && typeof entry.event.content.redacts === 'string') {
          redactedSender = (await this.events.find(entry.event.content.redacts, trx))?.sender;
        }
        await this.log.applyRemote(room, entry.event, id, entry.record, trx, batch, redactedSender);
        await this.log.finish(batch, trx);
      });
      this.arrived([id]);
      return null;
    } catch (err) {
      if (err instanceof ParleyError) return err.message;
      throw err;
    }
  }

  /** Host and origin signatures, content hash and event ID of one entry: null when it verifies. */
  private async verifyPushed(roomId: string, host: string, entry: Entry, allowRedacted = false): Promise<string | null> {
    if (entry.record.room_id !== roomId || entry.event.room_id !== roomId) return 'entry of another room';
    await this.prefetchKeys([entry], host);
    const ring = this.keyRing();
    if (entry.record.event_id !== computeEventId(entry.event)) return 'record names another event';
    const rec = verifyRecord(entry.record, host, ring);
    if (!rec.ok) return `record: ${rec.reason}`;
    const ev = verifyEvent(entry.event, ring, { allowRedacted });
    return ev.ok ? null : `event: ${ev.reason}`;
  }

  private transactionBudget(): BackfillBudget {
    return new BackfillBudget(TRANSACTION_BACKFILL, () => this.clock.now());
  }

  private readonly backfillGate = new RoomBackfillGate(() => this.clock.now());

  /**
   * Fetches the entries after our head up to `upTo` from the host, page by page. Every page
   * must continue exactly at our next seq and every entry must verify and apply, or the
   * backfill stops (and the room's backfill pauses); pages, bytes and time come out of
   * `budget`, and out of the room's own rate. Answers null when the gap is filled, else why not.
   */
  private async backfill(roomId: string, host: string, upTo: number, budget: BackfillBudget): Promise<string | null> {
    const busy = this.backfillGate.enter(roomId);
    if (busy) return `backfill from ${host} not attempted: ${busy}`;
    let failed = false;
    const fail = (why: string) => {
      failed = true;
      this.logger.warn({ room_id: roomId, host, reason: why }, 'backfill refused');
      return `backfill from ${host} failed: ${why}`;
    };
    try {
      for (;;) {
        const room = (await this.rooms.find(roomId)) as RoomRow;
        const from = room.current_seq + 1;
        if (from > upTo) return null;
        const spent = budget.spent() ?? (this.backfillGate.takePage(roomId) ? null : 'this room used its backfill rate');
        if (spent) return `backfill from ${host} stopped at seq ${from} (entries up to ${upTo} missing): ${spent}`;
        const limit = Math.min(BACKFILL_PAGE, upTo - from + 1);
        const { maxBytes, timeoutMs } = budget.takePage();
        let res: { body: unknown; headers: Record<string, string | string[] | undefined> };
        try {
          res = await this.fed.client.request({
            destination: host,
            method: 'GET',
            path: `/federation/v1/rooms/${encodeURIComponent(roomId)}/events?from_seq=${from}&limit=${limit}`,
            maxBytes,
            timeoutMs,
          });
        } catch (err) {
          return fail(`page at seq ${from}: ${(err as Error).message}`);
        }
        const declared = Number(res.headers['content-length']);
        budget.charge(Number.isFinite(declared) ? declared : maxBytes);
        const raw = (res.body as { entries?: unknown })?.entries;
        if (!Array.isArray(raw) || raw.length === 0) return fail(`the host answered no entries from seq ${from}`);
        if (raw.length > limit) return fail(`the host answered ${raw.length} entries for a page of ${limit}`);
        let entries: Entry[];
        try {
          entries = this.parseEntries(raw);
        } catch (err) {
          return fail((err as Error).message);
        }
        // Progress on every page: exactly the next entries, in order, or nothing is taken.
        const off = entries.findIndex((e, k) => e.record.seq !== from + k);
        if (off >= 0) return fail(`asked from seq ${from}, the page has seq ${(entries[off] as Entry).record.seq} at position ${off}`);
        const problems = await this.applyRun(roomId, host, entries, true);
        const bad = problems.findIndex((p) => p !== null);
        if (bad >= 0) return fail(`seq ${from + bad}: ${problems[bad]}`);
      }
    } finally {
      this.backfillGate.leave(roomId, failed);
    }
  }
}
