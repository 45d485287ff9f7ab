import { canSee, visibleUpTo } from '@parley/federation/room';
import type { ClientEvent, HistoryVisibility, Membership, MessagesResponse } from '@parley/schemas';
import type { Db } from '../db/database.js';
import { badRequest, forbidden, notFound } from '../errors.js';
import type { EventRepository, EventRow } from '../repositories/events.js';
import type { ReadMarkerRepository, TxnRepository } from '../repositories/room-extras.js';
import type { RoomRepository, RoomRow } from '../repositories/rooms.js';
import { clientEventOf } from './client-event.js';
import type { Clock } from './clock.js';
import type { AuthContext } from './sessions.js';
import type { StreamWriter } from './stream-bus.js';
import { visibleRanges } from './visible-ranges.js';

export const MAX_PAGE = 1000;
const TOKEN_RE = /^s(\d{1,10})$/;
// seq is a Postgres integer: a larger token is refused here, not as a 500 from the database.
const MAX_SEQ = 2 ** 31 - 1;

export function pageToken(seq: number): string {
  return `s${seq}`;
}

export function parsePageToken(token: string, field: string): number {
  const m = TOKEN_RE.exec(token);
  if (!m || Number(m[1]) > MAX_SEQ) throw badRequest('PARLEY_INVALID_PARAM', `${field} is not a pagination token from this server`, field);
  return Number(m[1]);
}

export type MembershipLog = Array<{ seq: number; membership: Membership }>;

// Older-history fetches from a remote room's host that one /messages request may make.
const MAX_OLDER_FETCHES = 3;

/** What a viewer may read of one room: the membership log drives history visibility. */
export interface Reader {
  room: RoomRow;
  log: MembershipLog;
  userId: string;
  deviceId: string;
  /**
   * The last seq this viewer may read up to: +Infinity while joined or invited (or when the
   * room is world-readable), else the event that ended their last stretch in the room. State
   * and members are shown as of this seq, and paging stops there.
   */
  upTo: number;
}

/**
 * Reading the room log: history pages, single events with context, relations, and the
 * client form of events (the two signed layers merged, with edits, reactions and thread
 * summaries aggregated into `unsigned`).
 */
export class TimelineService {
  /** Set when federation is on: public receipts go to the room's other servers. */
  federateReceipt: ((roomId: string, userId: string, eventId: string, ts: number) => void) | null = null;

  constructor(
    private readonly rooms: RoomRepository,
    private readonly events: EventRepository,
    private readonly txns: TxnRepository,
    private readonly markers: ReadMarkerRepository,
    private readonly clock: Clock,
    private readonly writer: StreamWriter,
    private readonly db: Db,
  ) {}

  /** Set when federation runs: fetches a remote room's history below its snapshot (from `fromSeq`). */
  olderHistory: ((roomId: string, fromSeq: number) => Promise<void>) | null = null;

  /**
   * Refuses callers who were never joined or invited, unless the room is world-readable. Any
   * membership entry used to grant reading the present (issue 10, M1): a ban before ever
   * joining or a knock grants nothing, and a former member reads as of their departure.
   */
  async reader(auth: AuthContext, roomId: string): Promise<Reader> {
    const room = await this.rooms.find(roomId);
    if (!room) throw notFound(`no room ${roomId} on this server`);
    const log = await this.rooms.membershipLog(roomId, auth.userId);
    let upTo = visibleUpTo(log);
    if (upTo !== Number.POSITIVE_INFINITY) {
      const [vis] = await this.rooms.stateEvents(roomId, [{ type: 'room.history_visibility', stateKey: '' }]);
      if (vis?.content.history_visibility === 'world_readable') upTo = Number.POSITIVE_INFINITY;
    }
    if (upTo === 0) throw forbidden('you are not a member of this room');
    return { room, log, userId: auth.userId, deviceId: auth.deviceId, upTo };
  }

  visible(reader: Reader, row: EventRow): boolean {
    return canSee(reader.log, row.seq, row.visibility as HistoryVisibility);
  }

  async messages(auth: AuthContext, roomId: string, from: string | undefined, dir: 'b' | 'f', limit: number): Promise<MessagesResponse> {
    const reader = await this.reader(auth, roomId);
    // Nothing past `upTo` is visible: a viewer who left reads from there, not from the head
    // through every later event one batch at a time (issue 10, M7).
    const head = Math.min(reader.room.current_seq, reader.upTo);
    let cursor = from === undefined ? (dir === 'b' ? head : 1) : parsePageToken(from, 'from');
    if (dir === 'b') cursor = Math.min(cursor, head);
    const start = pageToken(cursor);
    const picked: EventRow[] = [];
    // A room joined from a state snapshot is complete only from `floor`: below it, the older
    // history is fetched from the host before it is read.
    let floor = reader.room.history_from ?? 1;
    // Fetches from the host per request: past them the page ends early with an `end` token,
    // so paging through a long stretch the reader may not see costs the host a bounded amount
    // per request instead of the whole log (issue 10, H2 sweep).
    let olderFetches = 0;
    // The query skips what the viewer may not see (canSee still judges each row), so a hidden
    // stretch costs no round trips; read until the page is full or the log ends.
    const ranges = visibleRanges(reader.log);
    while (picked.length < limit && (dir === 'b' ? cursor >= 1 : cursor <= head)) {
      if (dir === 'b' && cursor < floor && this.olderHistory) {
        if (olderFetches === MAX_OLDER_FETCHES) break;
        olderFetches++;
        await this.olderHistory(roomId, Math.max(1, cursor - Math.max(100, limit * 2) + 1));
        floor = (await this.rooms.find(roomId))?.history_from ?? 1;
      }
      let batch = await this.events.page(roomId, cursor, dir, Math.min(MAX_PAGE, (limit - picked.length) * 2 + 10), ranges);
      if (dir === 'b' && cursor >= floor && batch.some((r) => r.seq < floor)) {
        batch = batch.filter((r) => r.seq >= floor);
        if (batch.length === 0) {
          cursor = floor - 1;
          continue;
        }
      }
      if (batch.length === 0) {
        // Nothing visible down to the snapshot floor: older history may still be fetched.
        if (dir === 'b' && cursor >= floor && floor > 1 && this.olderHistory) {
          cursor = floor - 1;
          continue;
        }
        cursor = dir === 'b' ? 0 : head + 1;
        break;
      }
      for (const row of batch) {
        cursor = dir === 'b' ? row.seq - 1 : row.seq + 1;
        if (this.visible(reader, row)) picked.push(row);
        if (picked.length === limit) break;
      }
    }
    const more = dir === 'b' ? cursor >= 1 : cursor <= head;
    const chunk = await this.toClient(picked, reader);
    return more ? { chunk, start, end: pageToken(cursor) } : { chunk, start };
  }

  async event(auth: AuthContext, roomId: string, eventId: string): Promise<ClientEvent> {
    const reader = await this.reader(auth, roomId);
    const row = await this.visibleRow(reader, eventId);
    return (await this.toClient([row], reader))[0] as ClientEvent;
  }

  async context(auth: AuthContext, roomId: string, eventId: string, limit: number) {
    const reader = await this.reader(auth, roomId);
    const row = await this.visibleRow(reader, eventId);
    const half = Math.max(1, Math.floor(limit / 2));
    // Filtered in the query too, so a hidden stretch next to the event does not empty the context.
    const ranges = visibleRanges(reader.log);
    const before = (await this.events.page(roomId, row.seq - 1, 'b', half, ranges)).filter((r) => this.visible(reader, r));
    const after = (await this.events.page(roomId, row.seq + 1, 'f', half, ranges)).filter((r) => this.visible(reader, r));
    const all = await this.toClient([...before.reverse(), row, ...after], reader);
    return {
      event: all[before.length] as ClientEvent,
      before: all.slice(0, before.length).reverse(),
      after: all.slice(before.length + 1),
      start: pageToken(Math.max(0, (before.at(-1)?.seq ?? row.seq) - 1)),
      end: pageToken((after.at(-1)?.seq ?? row.seq) + 1),
    };
  }

  /** Events relating to one event (edit history, thread replies, reactions), oldest first. */
  async relations(auth: AuthContext, roomId: string, eventId: string, relType: string | undefined): Promise<ClientEvent[]> {
    const reader = await this.reader(auth, roomId);
    await this.visibleRow(reader, eventId);
    const rows = (await this.events.relationsTo([eventId])).filter(
      (r) => r.room_id === roomId && r.type !== 'room.redaction' && (!relType || r.rel_type === relType) && this.visible(reader, r),
    );
    return this.toClient(rows, reader);
  }

  /** Moves the read marker forward and announces the receipt (only to the user if private). */
  async markRead(auth: AuthContext, roomId: string, eventId: string, isPrivate = false): Promise<void> {
    const reader = await this.reader(auth, roomId);
    const row = await this.visibleRow(reader, eventId);
    const ts = this.clock.now();
    if (!(await this.markers.advance(roomId, auth.userId, eventId, row.seq, ts))) return;
    await this.writer.writeNow(this.db, [
      {
        kind: 'receipt',
        room_id: roomId,
        private: isPrivate,
        user_id: auth.userId,
        device_id: null,
        room_ids: null,
        data: { room_id: roomId, user_id: auth.userId, event_id: eventId, private: isPrivate, ts },
      },
    ]);
    // Private receipts never leave this server.
    if (!isPrivate) this.federateReceipt?.(roomId, auth.userId, eventId, ts);
  }

  private async visibleRow(reader: Reader, eventId: string): Promise<EventRow> {
    const row = await this.events.find(eventId);
    if (!row || row.room_id !== reader.room.room_id || !this.visible(reader, row))
      throw notFound(`no event ${eventId} visible in this room`);
    return row;
  }

  /**
   * Client form: merged layers plus aggregated relations and the sender's own txn_id. With a
   * full Reader, only relations the viewer may see are aggregated: edits and reactions made
   * after they left must not leak through `unsigned` (issue 10, L1).
   */
  async toClient(rows: EventRow[], reader: { userId: string; deviceId: string; log?: MembershipLog }): Promise<ClientEvent[]> {
    const ids = rows.map((r) => r.event_id);
    const all = await this.events.relationsTo(ids);
    const log = reader.log;
    const related = log ? all.filter((r) => canSee(log, r.seq, r.visibility as HistoryVisibility)) : all;
    const txnIds = await this.txns.forEvents(reader.userId, reader.deviceId, ids);
    const byTarget = new Map<string, EventRow[]>();
    for (const r of related) {
      const list = byTarget.get(r.rel_event_id as string) ?? [];
      list.push(r);
      byTarget.set(r.rel_event_id as string, list);
    }
    return rows.map((row) => {
      const unsigned: Record<string, unknown> = {};
      if (row.redacted_by) unsigned.redacted_because = row.redacted_by;
      const txn = txnIds.get(row.event_id);
      if (txn) unsigned.txn_id = txn;
      const rels = byTarget.get(row.event_id) ?? [];
      // Only the original sender's edits count; the latest one is shown.
      const edit = rels.filter((r) => r.rel_type === 'replace' && r.sender === row.sender).at(-1);
      if (edit && !row.redacted_by) {
        unsigned.edit = { event_id: edit.event_id, origin_ts: edit.origin_ts, content: edit.event.content.new_content ?? {} };
      }
      const reactions = new Map<string, { key: string; count: number; me: boolean }>();
      for (const r of rels) {
        if (r.rel_type !== 'annotation' || !r.rel_key) continue;
        const agg = reactions.get(r.rel_key) ?? { key: r.rel_key, count: 0, me: false };
        agg.count += 1;
        agg.me ||= r.sender === reader.userId;
        reactions.set(r.rel_key, agg);
      }
      // Most used first; ties keep the order in which each key was first used (stable sort).
      if (reactions.size > 0) unsigned.reactions = [...reactions.values()].sort((a, b) => b.count - a.count);
      const thread = rels.filter((r) => r.rel_type === 'thread');
      if (thread.length > 0) unsigned.thread = { count: thread.length, latest_event_id: thread.at(-1)?.event_id };
      const out = clientEventOf(row);
      if (Object.keys(unsigned).length > 0) out.unsigned = unsigned;
      return out;
    });
  }
}
