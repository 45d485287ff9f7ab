import type { RoomEvent, SeqRecord } from '@parley/schemas';
import type { Knex } from 'knex';
import type { Db } from '../db/database.js';
import type { SeqRange, VisibleRanges } from '../services/visible-ranges.js';
import { copyRows } from './copy.js';

export interface EventRow {
  event_id: string;
  room_id: string;
  seq: number;
  type: string;
  state_key: string | null;
  sender: string;
  origin_ts: number;
  event: RoomEvent;
  record: SeqRecord;
  visibility: string;
  redacted_by: string | null;
  rel_type: string | null;
  rel_event_id: string | null;
  rel_key: string | null;
}

export const INSERT_SLICE = 1000;

const COLUMNS = [
  'event_id',
  'room_id',
  'seq',
  'type',
  'state_key',
  'sender',
  'origin_ts',
  'event',
  'record',
  'visibility',
  'redacted_by',
  'rel_type',
  'rel_event_id',
  'rel_key',
];

/** The room log. */
export class EventRepository {
  constructor(private readonly db: Db) {}

  async insert(row: EventRow, trx: Db): Promise<void> {
    await trx('events').insert({ ...row, event: JSON.stringify(row.event), record: JSON.stringify(row.record) });
  }

  /** The INSERT of `rows` (at most INSERT_SLICE), built but not run: a part of a larger statement. */
  insertQuery(rows: EventRow[], trx: Db): Knex.QueryBuilder {
    if (rows.length > INSERT_SLICE) throw new RangeError(`at most ${INSERT_SLICE} rows in one INSERT`);
    return trx('events').insert(rows.map((row) => ({ ...row, event: JSON.stringify(row.event), record: JSON.stringify(row.record) })));
  }

  /** Inserts rows in one statement per slice (a duplicate fails, as with insert). */
  async insertMany(rows: EventRow[], trx: Db): Promise<void> {
    for (let i = 0; i < rows.length; i += INSERT_SLICE) {
      await trx('events').insert(
        rows.slice(i, i + INSERT_SLICE).map((row) => ({ ...row, event: JSON.stringify(row.event), record: JSON.stringify(row.record) })),
      );
    }
  }

  /**
   * Inserts the rows of a room created in the caller's transaction (a snapshot join) with one
   * COPY: none can exist yet (every event row references its room, and an event ID is the
   * hash of an event naming its room), so nothing is skipped as insertMissing would.
   */
  async copyIntoNewRoom(rows: EventRow[], trx: Db): Promise<void> {
    await copyRows(
      trx,
      'events',
      COLUMNS,
      rows.map((r) => [
        r.event_id,
        r.room_id,
        r.seq,
        r.type,
        r.state_key,
        r.sender,
        r.origin_ts,
        JSON.stringify(r.event),
        JSON.stringify(r.record),
        r.visibility,
        r.redacted_by,
        r.rel_type,
        r.rel_event_id,
        r.rel_key,
      ]),
    );
  }

  /** Inserts entries fetched out of order (snapshot, backfill); ones already held are kept. */
  async insertMissing(rows: EventRow[], trx: Db): Promise<void> {
    // One statement binds at most 65,535 parameters (14 per row): a snapshot join of a room
    // with 10,000 members failed with 08P01 before the rows went in slices.
    for (let i = 0; i < rows.length; i += INSERT_SLICE) {
      await trx('events')
        .insert(
          rows.slice(i, i + INSERT_SLICE).map((row) => ({ ...row, event: JSON.stringify(row.event), record: JSON.stringify(row.record) })),
        )
        .onConflict()
        .ignore();
    }
  }

  /**
   * The room's state just before `seq`: the latest state event per (type, state_key), of the
   * given (type, state_key) pairs or whole types when `keys` is given.
   */
  async stateBefore(roomId: string, seq: number, keys?: Array<{ type: string; stateKey?: string }>): Promise<EventRow[]> {
    const q = this.db<EventRow>('events')
      .distinctOn('type', 'state_key')
      .where('room_id', roomId)
      .whereNotNull('state_key')
      .where('seq', '<', seq);
    if (keys) {
      if (keys.length === 0) return [];
      q.andWhere((w) => {
        for (const k of keys) {
          w.orWhere((one) => {
            one.where('type', k.type);
            if (k.stateKey !== undefined) one.andWhere('state_key', k.stateKey);
          });
        }
      });
    }
    return q.orderBy([{ column: 'type' }, { column: 'state_key' }, { column: 'seq', order: 'desc' }]).select(COLUMNS);
  }

  /**
   * stateBefore(roomId, seq) as the JSON text of its entries (`[{ event, record, meta }]`, in
   * the same order), built by Postgres: a large room's state (a snapshot join) is sent on
   * without parsing thousands of rows here and serialising them again.
   */
  async stateBeforeJson(roomId: string, seq: number): Promise<string> {
    const { rows } = await this.db.raw<{ rows: Array<{ state: string }> }>(
      `select coalesce(json_agg(json_build_object('event', s.event, 'record', s.record,
                'meta', json_build_object('visibility', s.visibility, 'redacted_by', s.redacted_by))
              order by s.type, s.state_key), '[]')::text as state
         from (select distinct on (type, state_key) type, state_key, event, record, visibility, redacted_by
                 from events where room_id = ? and state_key is not null and seq < ?
                order by type, state_key, seq desc) s`,
      [roomId, seq],
    );
    return rows[0]?.state ?? '[]';
  }

  async find(eventId: string, trx: Db = this.db): Promise<EventRow | undefined> {
    return trx<EventRow>('events').where({ event_id: eventId }).first(COLUMNS);
  }

  async findMany(eventIds: string[]): Promise<EventRow[]> {
    if (eventIds.length === 0) return [];
    return this.db<EventRow>('events').whereIn('event_id', eventIds).select(COLUMNS);
  }

  /** Events of a room in seq order, from `fromSeq` (inclusive) in direction `dir`. */
  /**
   * Up to `limit` events from `fromSeq` on in one direction; with `visible`, only those inside
   * the viewer's visible ranges, so hidden stretches cost no extra round trips (issue 10, M7).
   */
  async page(roomId: string, fromSeq: number, dir: 'b' | 'f', limit: number, visible?: VisibleRanges): Promise<EventRow[]> {
    const q = this.db<EventRow>('events')
      .where('room_id', roomId)
      .andWhere('seq', dir === 'b' ? '<=' : '>=', fromSeq);
    if (visible) q.andWhere((w) => whereVisible(w, [roomId], new Map([[roomId, visible]])));
    return q
      .orderBy('seq', dir === 'b' ? 'desc' : 'asc')
      .limit(limit)
      .select(COLUMNS);
  }

  async range(roomId: string, fromSeq: number, toSeq: number): Promise<EventRow[]> {
    return this.db<EventRow>('events').where('room_id', roomId).whereBetween('seq', [fromSeq, toSeq]).orderBy('seq', 'asc').select(COLUMNS);
  }

  /** Replaces an event by its redacted form and records what redacted it. */
  async markRedacted(eventId: string, redacted: RoomEvent, redactedBy: string, trx: Db): Promise<void> {
    await trx('events')
      .where({ event_id: eventId })
      .update({ event: JSON.stringify(redacted), redacted_by: redactedBy });
  }

  /** Live (unredacted) events relating to any of the targets. */
  async relationsTo(targets: string[]): Promise<EventRow[]> {
    if (targets.length === 0) return [];
    return this.db<EventRow>('events').whereIn('rel_event_id', targets).whereNull('redacted_by').orderBy('seq', 'asc').select(COLUMNS);
  }

  async findReaction(target: string, sender: string, key: string, trx: Db): Promise<EventRow | undefined> {
    return trx<EventRow>('events')
      .where({ rel_event_id: target, sender, rel_key: key, rel_type: 'annotation' })
      .whereNull('redacted_by')
      .first(COLUMNS);
  }

  async latestMessage(roomIds: string[]): Promise<EventRow[]> {
    if (roomIds.length === 0) return [];
    return this.db
      .select<EventRow[]>(COLUMNS.map((c) => `e.${c}`))
      .from(
        this.db('events')
          .whereIn('room_id', roomIds)
          .whereIn('type', ['room.message', 'room.encrypted'])
          .whereNull('redacted_by')
          // An edit is not a new message: the preview is the newest message, as edited.
          .whereRaw("rel_type IS DISTINCT FROM 'replace'")
          .distinctOn('room_id')
          .orderBy([{ column: 'room_id' }, { column: 'seq', order: 'desc' }])
          .select('event_id')
          .as('latest'),
      )
      .join('events as e', 'e.event_id', 'latest.event_id');
  }

  /** Messages from others after `afterSeq` in each room (unread counts). */
  async countUnread(userId: string, rooms: Array<{ roomId: string; afterSeq: number }>): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    if (rooms.length === 0) return out;
    const rows = await this.db('events')
      .where((q) => {
        for (const r of rooms) q.orWhere((w) => w.where('room_id', r.roomId).andWhere('seq', '>', r.afterSeq));
      })
      .whereIn('type', ['room.message', 'room.encrypted'])
      // Only since the user's latest join: what came before is not theirs to count (and, under
      // joined or invited visibility, not theirs to know about).
      .whereRaw(
        "seq > coalesce((SELECT max(ml.seq) FROM membership_log ml WHERE ml.room_id = events.room_id AND ml.user_id = ? AND ml.membership = 'join'), 0)",
        [userId],
      )
      .whereNot('sender', userId)
      .whereNull('redacted_by')
      .whereRaw("rel_type IS DISTINCT FROM 'replace'")
      .groupBy('room_id')
      .select<{ room_id: string; n: number }[]>('room_id', this.db.raw('count(*)::int as n'));
    for (const r of rows) out.set(r.room_id, r.n);
    return out;
  }

  /**
   * Ranked full-text hits in `roomIds`. With `visible`, only events inside the viewer's
   * visible seq ranges per room (see services/visible-ranges.ts), so pages are exact.
   */
  async search(
    roomIds: string[],
    query: string,
    limit: number,
    offset: number,
    visible?: Map<string, VisibleRanges>,
  ): Promise<Array<EventRow & { rank: number }>> {
    if (roomIds.length === 0) return [];
    const q = this.db('events').whereIn('room_id', roomIds);
    if (visible) q.andWhere((w) => whereVisible(w, roomIds, visible));
    return q
      .where('type', 'room.message')
      .whereNull('redacted_by')
      .whereRaw("search_tsv @@ websearch_to_tsquery('simple', ?)", [query])
      .select([...COLUMNS, this.db.raw("ts_rank(search_tsv, websearch_to_tsquery('simple', ?)) as rank", [query])])
      .orderBy([
        { column: 'rank', order: 'desc' },
        { column: 'origin_ts', order: 'desc' },
        { column: 'event_id', order: 'asc' },
      ])
      .limit(limit)
      .offset(offset);
  }
}

// (room, seq, visibility) inside one of the viewer's visible ranges of that room.
function whereVisible(w: Knex.QueryBuilder, roomIds: string[], visible: Map<string, VisibleRanges>): void {
  const within = (b: Knex.QueryBuilder, [from, to]: SeqRange) => {
    b.where('seq', '>=', from);
    if (Number.isFinite(to)) b.andWhere('seq', '<=', to);
  };
  w.whereRaw('false');
  for (const roomId of roomIds) {
    const r = visible.get(roomId);
    w.orWhere((room) => {
      room.where('room_id', roomId).andWhere((v) => {
        v.where('visibility', 'world_readable');
        if (r && r.sharedUpTo > 0) v.orWhere((b) => within(b.where('visibility', 'shared'), [1, r.sharedUpTo]));
        for (const range of r?.invited ?? []) v.orWhere((b) => within(b.where('visibility', 'invited'), range));
        for (const range of r?.joined ?? []) v.orWhere((b) => within(b.where('visibility', 'joined'), range));
      });
    });
  }
}
