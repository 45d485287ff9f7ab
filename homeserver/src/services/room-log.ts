import type { KeyObject } from 'node:crypto';
import { recordHash, redact, signEvent, signRecord } from '@parley/federation/events';
import {
  authorize,
  historyVisibility,
  MLS_STALE_EPOCH,
  MLS_TYPES,
  nextMlsEpoch,
  ROOM_ENCRYPTED,
  type StateMap,
  stateKey as stateMapKey,
} from '@parley/federation/room';
import type { Membership, RoomEvent, SeqRecord } from '@parley/schemas';
import type { Knex } from 'knex';
import type { Db } from '../db/database.js';
import { ParleyError } from '../errors.js';
import type { MlsEpochRepository } from '../repositories/e2e-keys.js';
import { type EventRepository, type EventRow, INSERT_SLICE } from '../repositories/events.js';
import type { TxnRow } from '../repositories/room-extras.js';
import type { RoomRepository, RoomRow } from '../repositories/rooms.js';
import type { NewNote } from '../repositories/stream.js';
import { clientEventOf } from './client-event.js';
import type { Clock } from './clock.js';
import type { StreamWriter } from './stream-bus.js';

export interface SigningIdentity {
  serverName: string;
  keyId: string;
  privateKey: KeyObject;
  publicKey: KeyObject;
}

export interface Draft {
  type: string;
  state_key?: string;
  sender: string;
  content: Record<string, unknown>;
}

export interface AppendBatch {
  room: RoomRow;
  notes: Array<NewNote & { live?: Record<string, unknown> }>;
  authCache: Map<string, StateMap>;
  /** Entries persisted in this batch, for fan-out to participant servers. */
  entries: Array<{ event: RoomEvent; record: SeqRecord; target: string | null }>;
  /**
   * Set by `begin(room, { deferInserts: true })`: message event rows wait here and go in one
   * INSERT (at `flush`/`finish`, or before anything that reads or references events), so a
   * run of N messages costs one round trip instead of N. Only for callers that read no event
   * of the batch between appends without calling `flush` first.
   */
  pendingRows?: EventRow[];
  /** txn rows of the batch's sends (idempotency), written by `finish` with the events. */
  txns: TxnRow[];
  /**
   * The servers with joined members (the host's fan-out reads it once per batch), when known:
   * carried over from the room's previous batch like `authCache` (see RoomLog.begin).
   */
  servers: string[] | null;
}

/** What a room's batches reuse while its state has not changed (RoomLog.begin). */
interface RoomMemo {
  seq: number;
  head: string | null;
  authCache: Map<string, StateMap>;
  servers: string[] | null;
}

// At most this many rooms remembered per process, and senders' auth states per room.
const MEMO_ROOMS = 128;
const MEMO_SENDERS = 16;

export interface Appended {
  eventId: string;
  seq: number;
  event: RoomEvent;
}

// State every auth decision may consult; member events of sender/target are added per event.
const AUTH_TYPES = ['room.create', 'room.roles', 'room.join_rules', 'room.history_visibility', 'room.encryption'];

/**
 * The host's side of the room log (docs/protocol.md): authorise an event against current state,
 * sign it as origin, sequence it with a signed record chained to the previous one, and
 * persist event, record and state in the caller's transaction. The caller holds the room
 * row lock, so seq has no gaps and `prev` is always the latest record.
 */
export class RoomLog {
  constructor(
    private readonly rooms: RoomRepository,
    private readonly events: EventRepository,
    private readonly identity: SigningIdentity,
    private readonly clock: Clock,
    private readonly stream: StreamWriter,
  ) {}

  private readonly memos = new Map<string, RoomMemo>();

  /**
   * Starts a group of appends to one (locked) room in one transaction: the room row update
   * and the stream notes are written once, by `finish`, and message events from the same
   * sender reuse the auth state read for the first one until a state event changes it.
   *
   * Across batches too: what a batch read of the room's state (senders' auth state, the
   * member servers) is remembered when it commits, tagged with the room's head then, and a
   * later batch that finds the room (read under its lock) still at that head reuses it. Any
   * append, by this process or another, moves the head; a state event in a batch drops the
   * memo at once, and a batch that rolls back leaves the old one, still true of the old head.
   */
  begin(room: RoomRow, options: { deferInserts?: boolean } = {}): AppendBatch {
    const memo = this.memos.get(room.room_id);
    const fresh = memo && memo.seq === room.current_seq && memo.head === room.head_hash ? memo : null;
    return {
      room,
      notes: [],
      authCache: fresh?.authCache ?? new Map(),
      servers: fresh?.servers ?? null,
      entries: [],
      txns: [],
      ...(options.deferInserts ? { pendingRows: [] } : {}),
    };
  }

  /** After `batch` commits: its room's state as it read it holds at the room's new head. */
  private remember(batch: AppendBatch, trx: Db): void {
    const { room } = batch;
    const memo: RoomMemo = { seq: room.current_seq, head: room.head_hash, authCache: batch.authCache, servers: batch.servers };
    const keep = () => {
      if (memo.authCache.size > MEMO_SENDERS) memo.authCache = new Map();
      this.memos.delete(room.room_id);
      this.memos.set(room.room_id, memo);
      if (this.memos.size > MEMO_ROOMS) this.memos.delete(this.memos.keys().next().value as string);
    };
    const tx = trx as unknown as { executionPromise?: Promise<unknown> };
    if (tx.executionPromise) void tx.executionPromise.then(keep, () => {});
    else keep();
  }

  /** Writes the event rows a deferring batch holds (see AppendBatch.pendingRows). */
  async flush(batch: AppendBatch, trx: Db): Promise<void> {
    const rows = batch.pendingRows;
    if (!rows || rows.length === 0) return;
    batch.pendingRows = [];
    await this.events.insertMany(rows, trx);
  }

  async finish(batch: AppendBatch, trx: Db): Promise<void> {
    const rows = batch.pendingRows ?? [];
    if (batch.notes.length === 0 || rows.length > INSERT_SLICE) await this.flush(batch, trx);
    if (batch.notes.length === 0) {
      if (batch.txns.length > 0) await trx('txn_ids').insert(batch.txns);
      batch.txns = [];
      return;
    }
    const { room } = batch;
    // The deferred event rows, the sends' txn rows, the room's new head, the stream's position
    // lock and the notes are one statement (database round trips are most of a send's cost:
    // bench/README.md).
    const writes: Knex.Sql[] = [];
    if (batch.pendingRows && batch.pendingRows.length > 0) writes.push(this.events.insertQuery(batch.pendingRows, trx).toSQL());
    if (batch.pendingRows) batch.pendingRows = [];
    if (batch.txns.length > 0) writes.push(trx('txn_ids').insert(batch.txns).toSQL());
    batch.txns = [];
    if (this.fanout && room.host === this.identity.serverName) writes.push(...(await this.fanout(room, batch, trx)));
    const gate = this.rooms.advanceQuery(room.room_id, room.current_seq, room.head_hash as string, room.lamport, trx);
    await this.stream.writeAfter(trx, batch.notes, writes, gate);
    batch.notes = [];
    this.remember(batch, trx);
    const onJoins = this.onJoins;
    if (onJoins) {
      const joined = batch.entries
        .filter((e) => e.event.type === 'room.member' && e.event.content.membership === 'join')
        .map((e) => e.event.state_key as string);
      const tx = trx as unknown as { executionPromise?: Promise<unknown> };
      if (joined.length > 0)
        void tx.executionPromise?.then(
          () => onJoins(room.room_id, joined),
          () => {},
        );
    }
    batch.entries = [];
  }

  /** The MLS epoch of encrypted rooms (first commit wins, docs/protocol.md); null leaves it unchecked. */
  mls: MlsEpochRepository | null = null;

  /** E before `event` for MLS events (undefined otherwise, or when not tracked). */
  private async mlsEpochFor(room: RoomRow, event: RoomEvent, trx: Db): Promise<number | null | undefined> {
    if (!this.mls || !MLS_TYPES.has(event.type)) return undefined;
    return (await this.mls.epoch(room.room_id, trx)) ?? null;
  }

  /** Set when federation runs: told (after commit) who joined a room, here or elsewhere. */
  onJoins: ((roomId: string, userIds: string[]) => void) | null = null;

  /**
   * Set when federation runs: the outbox INSERTs that queue sequenced entries for participant
   * servers (run by `finish` in its statement).
   */
  fanout: ((room: RoomRow, batch: AppendBatch, trx: Db) => Promise<Knex.Sql[]>) | null = null;

  /** The slice of state the auth rules need for this draft. */
  async authState(room: RoomRow, draft: Draft, trx: Db): Promise<StateMap> {
    const keys: Array<{ type: string; stateKey?: string }> = AUTH_TYPES.map((type) => ({ type, stateKey: '' }));
    keys.push({ type: 'room.member', stateKey: draft.sender });
    if (draft.state_key !== undefined) keys.push({ type: draft.type, stateKey: draft.state_key });
    const state: StateMap = new Map();
    for (const ev of await this.rooms.stateEvents(room.room_id, keys, trx)) state.set(stateMapKey(ev.type, ev.state_key ?? ''), ev);
    // Channels hold their own copy of their space's roles (RoomService keeps it in step), so
    // the auth rules never look outside the room's own log.
    return state;
  }

  /** Appends one event; with `batch`, the room update and stream note wait for `finish`. */
  async append(
    room: RoomRow,
    draft: Draft,
    trx: Db,
    ctx: { redactedEventSender?: string; txn?: { deviceId: string; txnId: string } } = {},
    batch?: AppendBatch,
  ): Promise<Appended> {
    const own = batch ?? this.begin(room);
    const now = this.clock.now();
    const unsignedEvent = {
      room_id: room.room_id,
      type: draft.type,
      ...(draft.state_key !== undefined ? { state_key: draft.state_key } : {}),
      sender: draft.sender,
      origin: this.identity.serverName,
      origin_ts: now,
      lamport: room.lamport + 1,
      content: draft.content,
    };
    let signed: { event: RoomEvent; eventId: string };
    try {
      signed = signEvent(unsignedEvent, this.identity.serverName, this.identity);
    } catch (err) {
      // Size caps and non-canonical numbers are the client's fault.
      throw new ParleyError(400, 'PARLEY_INVALID_PARAM', (err as Error).message, { field: 'content' });
    }
    const appended = await this.sequence(room, signed.event, signed.eventId, trx, ctx, own);
    if (!batch) await this.finish(own, trx);
    return appended;
  }

  /**
   * As host: authorises an origin-signed event (ours or a participant's, already verified)
   * against current state, signs its sequencing record and persists both.
   */
  async sequence(
    room: RoomRow,
    event: RoomEvent,
    eventId: string,
    trx: Db,
    ctx: { redactedEventSender?: string; txn?: { deviceId: string; txnId: string } },
    own: AppendBatch,
  ): Promise<Appended> {
    const draft: Draft = {
      type: event.type,
      sender: event.sender,
      content: event.content,
      ...(event.state_key !== undefined ? { state_key: event.state_key } : {}),
    };
    const cacheKey = draft.state_key === undefined ? `${draft.sender}\u0000${draft.type}` : null;
    let state = cacheKey ? own.authCache.get(cacheKey) : undefined;
    if (!state) {
      state = await this.authState(room, draft, trx);
      if (cacheKey) own.authCache.set(cacheKey, state);
    }
    const mlsEpoch = await this.mlsEpochFor(room, event, trx);
    const verdict = authorize(state, event, mlsEpoch === undefined ? ctx : { ...ctx, mlsEpoch });
    if (!verdict.ok) {
      if (verdict.code === MLS_STALE_EPOCH) throw new ParleyError(409, 'PARLEY_MLS_STALE_EPOCH', verdict.reason, { field: 'epoch' });
      if (verdict.code === ROOM_ENCRYPTED) throw new ParleyError(400, 'PARLEY_ROOM_ENCRYPTED', verdict.reason, { field: 'type' });
      throw new ParleyError(403, 'PARLEY_FORBIDDEN', verdict.reason);
    }
    const now = this.clock.now();
    const record = signRecord(
      { room_id: room.room_id, seq: room.current_seq + 1, event_id: eventId, prev: room.head_hash, host_ts: now },
      this.identity.serverName,
      this.identity,
    );
    await this.persist(room, event, eventId, record, historyVisibility(state), trx, own, ctx);
    return { eventId, seq: record.seq, event };
  }

  /**
   * As participant: stores an entry the host sequenced. The caller has verified the origin
   * and host signatures, the content hash, `seq` and `prev`; the auth rules run here too.
   */
  async applyRemote(
    room: RoomRow,
    event: RoomEvent,
    eventId: string,
    record: SeqRecord,
    trx: Db,
    own: AppendBatch,
    redactedEventSender?: string,
  ): Promise<void> {
    const draft: Draft = {
      type: event.type,
      sender: event.sender,
      content: event.content,
      ...(event.state_key !== undefined ? { state_key: event.state_key } : {}),
    };
    // As on the host: messages of one sender reuse the auth state until a state event changes it.
    const cacheKey = draft.state_key === undefined ? `${draft.sender}\u0000${draft.type}` : null;
    let state = cacheKey ? own.authCache.get(cacheKey) : undefined;
    if (!state) {
      state = await this.authState(room, draft, trx);
      if (cacheKey) own.authCache.set(cacheKey, state);
    }
    const mlsEpoch = await this.mlsEpochFor(room, event, trx);
    const verdict = authorize(state, event, {
      ...(redactedEventSender ? { redactedEventSender } : {}),
      ...(mlsEpoch === undefined ? {} : { mlsEpoch }),
    });
    if (!verdict.ok) throw new ParleyError(403, 'PARLEY_FORBIDDEN', `host sequenced an event the rules refuse: ${verdict.reason}`);
    await this.persist(room, event, eventId, record, historyVisibility(state), trx, own, {});
  }

  private async persist(
    room: RoomRow,
    event: RoomEvent,
    eventId: string,
    record: SeqRecord,
    visibility: string,
    trx: Db,
    own: AppendBatch,
    ctx: { txn?: { deviceId: string; txnId: string } },
  ): Promise<void> {
    const relation = relationOf(event.content);
    const row: EventRow = {
      event_id: eventId,
      room_id: room.room_id,
      seq: record.seq,
      type: event.type,
      state_key: event.state_key ?? null,
      sender: event.sender,
      origin_ts: event.origin_ts,
      event,
      record,
      visibility,
      redacted_by: null,
      rel_type: relation?.type ?? null,
      rel_event_id: relation?.event_id ?? null,
      rel_key: relation?.key ?? null,
    };
    const plain = event.state_key === undefined && event.type !== 'room.redaction' && !MLS_TYPES.has(event.type);
    if (own.pendingRows && plain) own.pendingRows.push(row);
    else {
      await this.flush(own, trx);
      await this.events.insert(row, trx);
    }
    if (this.mls && (event.type === 'room.mls.commit' || (event.type === 'room.encryption' && event.state_key === ''))) {
      const current = event.type === 'room.mls.commit' ? null : await this.mls.epoch(room.room_id, trx);
      const next = nextMlsEpoch(current, event);
      if (next !== null) await this.mls.set(room.room_id, next, record.seq, trx);
    }
    // A redaction strips its target for good, on the host and on every participant alike.
    if (event.type === 'room.redaction' && typeof event.content.redacts === 'string') {
      const target = await this.events.find(event.content.redacts, trx);
      if (target && target.room_id === room.room_id && !target.redacted_by)
        await this.events.markRedacted(target.event_id, redact(target.event), eventId, trx);
    }
    if (event.state_key !== undefined) {
      await this.rooms.putState(room.room_id, event.type, event.state_key, eventId, record.seq, trx);
      if (event.type === 'room.member') {
        await this.rooms.putMembership(room.room_id, event.state_key, event.content.membership as Membership, record.seq, trx);
      }
      // The room's state changes: nothing read of it before holds, here or in the memo.
      own.authCache = new Map();
      own.servers = null;
      this.memos.delete(room.room_id);
    }
    // Membership events also reach their target, who may not be joined (invites, kicks).
    const target = event.type === 'room.member' ? (event.state_key ?? null) : null;
    const data: Record<string, unknown> = { event_id: eventId };
    if (ctx.txn) Object.assign(data, { txn_id: ctx.txn.txnId, txn_device: ctx.txn.deviceId });
    own.notes.push({
      kind: 'event',
      room_id: room.room_id,
      private: false,
      user_id: target,
      device_id: null,
      room_ids: null,
      data,
      // The stream shows the event only to those its history visibility lets see it.
      live: { event: clientEventOf(row), visibility },
    });
    own.entries.push({ event, record, target });
    // Keep the caller's locked row current so several appends in one transaction chain.
    room.current_seq = record.seq;
    room.head_hash = recordHash(record);
    room.lamport = Math.max(room.lamport, event.lamport);
  }
}

export function relationOf(content: Record<string, unknown>): { type: string; event_id: string; key?: string } | null {
  const rel = content.relates_to as { type?: unknown; event_id?: unknown; key?: unknown } | undefined;
  if (content.redacts && typeof content.redacts === 'string') return { type: 'redaction', event_id: content.redacts };
  if (!rel || typeof rel.type !== 'string' || typeof rel.event_id !== 'string') return null;
  return { type: rel.type, event_id: rel.event_id, ...(typeof rel.key === 'string' ? { key: rel.key } : {}) };
}
