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

/** What a snapshot entry must be besides signed: at or before the anchor, a state event, one per key. */
function stateProblem(entry: Entry, anchor: Entry, keys: Set<string>): string | null {
  if (entry.record.seq > anchor.record.seq) return `state entry at seq ${entry.record.seq} is after the anchor`;
  if (entry === anchor) return null;
  if (entry.event.state_key === undefined) return `seq ${entry.record.seq} is not a state event`;
  const key = stateMapKey(entry.event.type, entry.event.state_key);
  if (keys.has(key)) return `two state entries for ${key}`;
  keys.add(key);
  return null;
}

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
    const asked = performance.now();
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
    if (body?.snapshot) await this.storeSnapshot(roomId, host, parseSnapshot(body.snapshot), entries, performance.now() - asked);
    else await this.storeChain(roomId, host, entries);
    await this.d.invites.delete(roomId, userId);
  }

  /**
   * Joins a large room from the host's state snapshot: every state entry and the anchor (the
   * entry just before the recent ones) carry valid host and origin signatures; the recent
   * entries are then verified as a chain continuing from the anchor, with the auth rules
   * replayed over the snapshot state. Older history is backfilled on demand.
   *
   * The snapshot's rows go into the database while its signatures are being checked, in a
   * transaction that commits only once everything verified (a refusal rolls it back), so the
   * inserts (Postgres' work) overlap the checks (the event loop's and worker threads').
   */
  private async storeSnapshot(roomId: string, host: string, snapshot: Snapshot, recent: Entry[], fetchMs = 0): Promise<void> {
    const { anchor } = snapshot;
    const refuse = (reason: string): never => {
      this.d.logger.warn({ room_id: roomId, host, reason }, 'refused a room snapshot');
      throw new ParleyError(502, 'PARLEY_UNAVAILABLE', `the state snapshot from ${host} does not verify: ${reason}`);
    };
    const started = performance.now();
    await this.checks.prefetchKeys([...snapshot.state, anchor, ...recent], host);
    const ring = this.checks.keyRing();
    const signed = [...snapshot.state, anchor];
    // The checks of each entry that need no signature, in order; the first entry that fails one
    // bounds the signature checks below (entries after it need none to refuse the snapshot).
    const keys = new Set<string>();
    const stateMap: StateMap = new Map();
    let shapeProblem: { index: number; problem: string } | null = null;
    for (const [index, entry] of signed.entries()) {
      const problem = stateProblem(entry, anchor, keys);
      if (problem) {
        shapeProblem = { index, problem };
        break;
      }
      if (entry !== anchor) stateMap.set(stateMapKey(entry.event.type, entry.event.state_key as string), entry.event);
    }
    const create = snapshot.state.find((e) => e.event.type === 'room.create');
    let verifiedAt = 0;
    const verification = (async () => {
      // Every signature of every entry up to there (shared with worker threads); an entry's bad
      // signature is reported before its other problems, as when each entry was checked in turn.
      const signatures = await this.checks.checkSignedMany(signed.slice(0, (shapeProblem?.index ?? signed.length) + 1), host, roomId, ring);
      const first = signatures && (!shapeProblem || signatures.index <= shapeProblem.index) ? signatures : shapeProblem;
      if (first) refuse(first === signatures ? `seq ${signed[first.index]?.record.seq}: ${first.problem}` : first.problem);
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
      verifiedAt = performance.now();
    })();
    // Awaited below, or its refusal is thrown in place of a failure of the inserts.
    verification.catch(() => {});
    // Nothing worth inserting: the checks will refuse it.
    if (shapeProblem || !create) return verification;

    const createEvent = create.event;
    await this.d.db.transaction(async (trx) => {
      const room: RoomRow = {
        room_id: roomId,
        host,
        creator: String(createEvent.content.creator ?? createEvent.sender),
        kind: createEvent.content.kind === 'space' ? 'space' : 'room',
        parent_id: null,
        published: false,
        current_seq: anchor.record.seq,
        head_hash: recordHash(anchor.record),
        lamport: signed.reduce((max, e) => Math.max(max, e.event.lamport), 0),
        created_ts: this.d.clock.now(),
        history_from: anchor.record.seq,
      };
      try {
        if (await this.d.rooms.lock(roomId, trx)) throw new ParleyError(409, 'PARLEY_INVALID_PARAM', `${roomId} is already known here`);
        await this.d.rooms.insert(room, trx);
        // The anchor, when a state event, is in the state too: one row per event.
        const ids = new Set<string>();
        const rows = signed.filter((e) => !ids.has(e.record.event_id) && ids.add(e.record.event_id)).map((e) => rowOf(e));
        const state = snapshot.state.map((e) => ({
          type: e.event.type,
          state_key: e.event.state_key as string,
          event_id: e.record.event_id,
          seq: e.record.seq,
          ...(e.event.type === 'room.member' ? { membership: e.event.content.membership as Membership } : {}),
        }));
        try {
          // A new room: its rows go in with COPY (nothing of it can be in the tables yet), in a
          // savepoint so that rows COPY cannot take fall back to the INSERTs below.
          await trx.transaction(async (sp) => {
            await this.d.events.copyIntoNewRoom(rows, sp);
            await this.d.rooms.copySnapshotIntoNewRoom(roomId, state, sp);
          });
        } catch (err) {
          // E.g. two events at one seq from a host that equivocates: INSERT skips what conflicts.
          this.d.logger.warn({ room_id: roomId, host, err: (err as Error).message }, 'snapshot rows refused by COPY; inserting them');
          await this.d.events.insertMissing(rows, trx);
          await this.d.rooms.putSnapshot(roomId, state, trx);
        }
      } catch (err) {
        // A snapshot that does not verify is refused as such, whatever the inserts made of it.
        await verification;
        throw err;
      }
      // Nothing below runs, and nothing commits, unless every check passed.
      await verification;
      // The recent messages' rows go in one INSERT at `finish` (flushed before a redaction reads its target).
      const batch = this.d.log.begin(room, { deferInserts: true });
      for (const e of recent) {
        let redactedSender: string | undefined;
        if (e.event.type === 'room.redaction' && typeof e.event.content.redacts === 'string') {
          await this.d.log.flush(batch, trx);
          redactedSender = (await this.d.events.find(e.event.content.redacts, trx))?.sender ?? senderOfRedacted(recent, e.event);
        }
        await this.d.log.applyRemote(room, e.event, e.record.event_id, e.record, trx, batch, redactedSender);
      }
      await this.d.log.finish(batch, trx);
    });
    this.d.logger.info(
      {
        room_id: roomId,
        host,
        state: snapshot.state.length,
        recent: recent.length,
        fetch_ms: Math.round(fetchMs),
        verify_ms: Math.round(verifiedAt - started),
        stored_ms: Math.round(performance.now() - started),
      },
      'joined a room from a state snapshot',
    );
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
