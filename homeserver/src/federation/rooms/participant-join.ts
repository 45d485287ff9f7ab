import { verifyChain } from '@parley/federation/chain';
import { eventId as computeEventId, recordHash } from '@parley/federation/events';
import { authorize, type StateMap, stateKey as stateMapKey } from '@parley/federation/room';
import type { Membership, RoomEvent } from '@parley/schemas';
import { forbidden, notFound, ParleyError } from '../../errors.js';
import type { RoomRow } from '../../repositories/rooms.js';
import { BACKFILL_PAGE, BACKFILL_PAGE_BYTES, RoomBackfillGate } from '../backfill-limits.js';
import { type Entry, MAX_JOIN_RESPONSE_BYTES, type Snapshot, serverOf } from './common.js';
import { type EntryChecks, type ParticipantDeps, parseEntries, parseSnapshot, rowOf, senderOfRedacted } from './participant-checks.js';
import type { SubmitLanes } from './participant-submit.js';

// Joining rooms hosted elsewhere (whole chain or state snapshot) and fetching their older
// history on demand (participant.ts).

const MAX_CONCURRENT_JOINS = 3;
const JOIN_RETRY_AFTER_MS = 5_000;
// A reader asked for older history while the room's backfill is busy or out of pages.
const OLDER_RETRY_AFTER_MS = 6_000;

/** Signs an event as this server for a room hosted elsewhere (ParticipantRooms.signForRemote). */
export type SignForRemote = (
  roomId: string,
  type: string,
  sender: string,
  content: Record<string, unknown>,
  stateKey?: string,
) => { event: RoomEvent; eventId: string };

export class RemoteJoins {
  constructor(
    private readonly d: ParticipantDeps,
    private readonly checks: EntryChecks,
    private readonly submits: SubmitLanes,
    private readonly sign: SignForRemote,
  ) {}

  /** Joins a room hosted on another server and stores its verified chain. */
  async join(userId: string, roomId: string, displayname: string | null): Promise<void> {
    // Two first joins of one room at once: the second waits for the first to store the room,
    // then joins like any later member (a submit), instead of storing the room twice.
    const pending = this.joining.get(roomId);
    if (pending) {
      await pending.catch(() => {});
      if (await this.d.rooms.find(roomId)) {
        await this.submits.submit(roomId, this.sign(roomId, 'room.member', userId, { membership: 'join', displayname }, userId).event);
        await this.d.invites.delete(roomId, userId);
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
    const { event } = this.sign(roomId, 'room.member', userId, { membership: 'join', displayname }, userId);
    let res: { body: unknown };
    try {
      res = await this.d.fed.client.request({
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
    const entries = parseEntries(body?.entries);
    if (body?.snapshot) await this.storeSnapshot(roomId, host, parseSnapshot(body.snapshot), entries);
    else await this.storeChain(roomId, host, entries);
    await this.d.invites.delete(roomId, userId);
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
      this.d.logger.warn({ room_id: roomId, host, reason }, 'refused a room snapshot');
      throw new ParleyError(502, 'PARLEY_UNAVAILABLE', `the state snapshot from ${host} does not verify: ${reason}`);
    };
    await this.checks.prefetchKeys([...snapshot.state, anchor, ...recent], host);
    const ring = this.checks.keyRing();
    const keys = new Set<string>();
    const stateMap: StateMap = new Map();
    for (const entry of [...snapshot.state, anchor]) {
      const problem = this.checks.checkSigned(entry, host, roomId, ring);
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
    await this.d.db.transaction(async (trx) => {
      if (await this.d.rooms.lock(roomId, trx)) throw new ParleyError(409, 'PARLEY_INVALID_PARAM', `${roomId} is already known here`);
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
        created_ts: this.d.clock.now(),
        history_from: anchor.record.seq,
      };
      await this.d.rooms.insert(room, trx);
      const rows = [...snapshot.state, anchor].map((e) => rowOf(e));
      await this.d.events.insertMissing(rows, trx);
      await this.d.rooms.putSnapshot(
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
      const batch = this.d.log.begin(room);
      for (const e of recent) {
        let redactedSender: string | undefined;
        if (e.event.type === 'room.redaction' && typeof e.event.content.redacts === 'string')
          redactedSender = (await this.d.events.find(e.event.content.redacts, trx))?.sender ?? senderOfRedacted(recent, e.event);
        await this.d.log.applyRemote(room, e.event, e.record.event_id, e.record, trx, batch, redactedSender);
      }
      await this.d.log.finish(batch, trx);
    });
  }

  /**
   * History below a snapshot join, fetched when someone pages back past `history_from`:
   * entries [from, history_from) are checked (signatures, and each record's hash is the
   * `prev` of the one after it, down from the first entry we hold), then stored.
   */
  async backfillOlder(roomId: string, from: number): Promise<void> {
    const room = await this.d.rooms.find(roomId);
    const floor = room?.history_from ?? 1;
    if (!room || room.host === this.d.identity.serverName || floor <= 1 || from >= floor) return;
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

  private readonly olderGate = new RoomBackfillGate(() => this.d.clock.now());
  private readonly olderInFlight = new Map<string, Promise<void>>();

  private async fetchOlder(room: RoomRow, start: number, floor: number): Promise<void> {
    const roomId = room.room_id;
    const res = await this.d.fed.client.request({
      destination: room.host,
      method: 'GET',
      path: `/federation/v1/rooms/${encodeURIComponent(roomId)}/events?from_seq=${start}&limit=${floor - start}`,
      maxBytes: BACKFILL_PAGE_BYTES,
      timeoutMs: 30_000,
    });
    const raw = (res.body as { entries?: unknown })?.entries;
    if (Array.isArray(raw) && raw.length > floor - start)
      throw new ParleyError(502, 'PARLEY_UNAVAILABLE', `backfill from ${room.host}: ${raw.length} entries for a page of ${floor - start}`);
    const entries = parseEntries(raw);
    const [above] = await this.d.events.range(roomId, floor, floor);
    if (!above) throw new ParleyError(502, 'PARLEY_UNAVAILABLE', `the log of ${roomId} has no entry at ${floor}`);
    await this.checks.prefetchKeys(entries, room.host);
    const ring = this.checks.keyRing();
    let next = above.record;
    for (let i = entries.length - 1; i >= 0; i--) {
      const e = entries[i] as Entry;
      const bad = (why: string) =>
        new ParleyError(502, 'PARLEY_UNAVAILABLE', `backfill from ${room.host} failed at seq ${e.record.seq}: ${why}`);
      if (e.record.seq !== next.seq - 1) throw bad(`expected seq ${next.seq - 1}`);
      if (recordHash(e.record) !== next.prev) throw bad('its hash is not the prev of the entry after it');
      const problem = this.checks.checkSigned(e, room.host, roomId, ring);
      if (problem) throw bad(problem);
      next = e.record;
    }
    if (next.seq !== start) throw new ParleyError(502, 'PARLEY_UNAVAILABLE', `backfill from ${room.host} stopped at seq ${next.seq}`);
    await this.d.db.transaction(async (trx) => {
      await this.d.events.insertMissing(
        entries.map((e) => rowOf(e)),
        trx,
      );
      await this.d.rooms.setHistoryFrom(roomId, start, trx);
    });
  }

  /** Verifies a whole chain from seq 1 and stores it as a new room hosted by `host`. */
  private async storeChain(roomId: string, host: string, entries: Entry[]): Promise<void> {
    await this.checks.prefetchKeys(entries, host);
    const verdict = verifyChain(entries, this.checks.keyRing(), authorize, { roomId });
    if (!verdict.ok) {
      this.d.logger.warn({ room_id: roomId, host, ...verdict }, 'refused a room chain');
      throw new ParleyError(502, 'PARLEY_UNAVAILABLE', `the chain from ${host} does not verify at seq ${verdict.seq}: ${verdict.reason}`);
    }
    const create = entries[0]?.event;
    await this.d.db.transaction(async (trx) => {
      let room = await this.d.rooms.lock(roomId, trx);
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
          created_ts: this.d.clock.now(),
        };
        await this.d.rooms.insert(row, trx);
        room = row;
      }
      const batch = this.d.log.begin(room);
      for (const e of entries)
        if (e.record.seq > room.current_seq)
          await this.d.log.applyRemote(room, e.event, e.record.event_id, e.record, trx, batch, senderOfRedacted(entries, e.event));
      await this.d.log.finish(batch, trx);
    });
  }
}
