import type { MembershipChange } from '@parley/federation/room';
import type { Knex } from 'knex';
import type { Db } from '../db/database.js';

/** One stream entry as stored and as carried between processes (live notes). */
export interface StreamNote {
  position: number;
  kind: string;
  room_id: string | null;
  private: boolean;
  user_id: string | null;
  device_id: string | null;
  room_ids: string[] | null;
  data: Record<string, unknown>;
}

export type NewNote = Omit<StreamNote, 'position'>;

// Any constant works; it only has to be the same in every process of one server.
export const POSITION_LOCK = 7_261_001;

export class StreamRepository {
  constructor(private readonly db: Db) {}

  /**
   * Appends notes and returns them with positions. Takes the position lock, held until the
   * caller's transaction ends: call this as the last write of the transaction.
   */
  async append(notes: NewNote[], ts: number, trx: Db): Promise<StreamNote[]> {
    if (notes.length === 0) return [];
    await trx.raw('SELECT pg_advisory_xact_lock(?)', [POSITION_LOCK]);
    const rows = await trx('stream')
      .insert(notes.map((n) => ({ ...n, data: JSON.stringify(n.data), created_ts: ts })))
      .returning(['position', 'kind', 'room_id', 'private', 'user_id', 'device_id', 'room_ids', 'data']);
    return rows as StreamNote[];
  }

  /**
   * `append` as the last part of one statement: `writes` (built INSERTs, e.g. of a batch's
   * events and txn rows) run first, then `gate` (an UPDATE, e.g. of the room's head) whose
   * RETURNING takes the position lock, and the notes are inserted only from the gate's row, so
   * their positions are allocated under the lock as in `append`. One round trip for what was
   * four (bench/README.md: database round trips are most of a send's cost). The notes keep
   * their order (positions ascend in it).
   */
  async appendAfter(notes: NewNote[], ts: number, trx: Db, writes: Knex.Sql[], gate: Knex.Sql): Promise<StreamNote[]> {
    const ctes = writes.map((w, i) => `w${i} as (${w.sql})`);
    ctes.push(`gate as (${gate.sql} returning pg_advisory_xact_lock(?) as locked)`);
    const sql = `with ${ctes.join(', ')}
      insert into stream (kind, room_id, private, user_id, device_id, room_ids, data, created_ts)
      select n.kind, n.room_id, n.private, n.user_id, n.device_id, n.room_ids, n.data, ?
        from gate, json_populate_recordset(null::stream, ?::json) with ordinality as n
       order by n.ordinality
      returning position, kind, room_id, private, user_id, device_id, room_ids, data`;
    const bindings = [...writes.flatMap((w) => w.bindings), ...gate.bindings, POSITION_LOCK, ts, JSON.stringify(notes)];
    const result = await trx.raw<{ rows: StreamNote[] }>(sql, bindings as Knex.RawBinding[]);
    const rows = result.rows;
    if (rows.length !== notes.length) throw new Error(`stream append wrote ${rows.length} of ${notes.length} notes (room row missing?)`);
    return rows.sort((x, y) => x.position - y.position);
  }

  async maxPosition(): Promise<number> {
    const row = await this.db('stream').max<{ max: number | null }>('position as max').first();
    return Number(row?.max ?? 0);
  }

  async range(from: number, to: number): Promise<StreamNote[]> {
    return this.db<StreamNote>('stream')
      .where('position', '>=', from)
      .andWhere('position', '<=', to)
      .orderBy('position', 'asc')
      .select('position', 'kind', 'room_id', 'private', 'user_id', 'device_id', 'room_ids', 'data');
  }

  /** What a device may see after `since`, in order, at most `limit` entries. */
  async forDevice(userId: string, deviceId: string, rooms: string[], since: number, upTo: number, limit: number): Promise<StreamNote[]> {
    return this.db<StreamNote>('stream')
      .where('position', '>', since)
      .andWhere('position', '<=', upTo)
      .andWhere((q) => {
        q.where((w) => w.whereIn('room_id', rooms).andWhere('private', false))
          .orWhere((w) => w.where('user_id', userId).andWhere((d) => d.whereNull('device_id').orWhere('device_id', deviceId)))
          .orWhereRaw('room_ids && ?::text[]', [rooms]);
      })
      .orderBy('position', 'asc')
      .limit(limit)
      .select('position', 'kind', 'room_id', 'private', 'user_id', 'device_id', 'room_ids', 'data');
  }

  /** The user's membership changes in each of `roomIds`, oldest first. */
  async membershipLogs(userId: string, roomIds: string[]): Promise<Map<string, MembershipChange[]>> {
    const out = new Map<string, MembershipChange[]>();
    if (roomIds.length === 0) return out;
    const rows = await this.db('membership_log')
      .where('user_id', userId)
      .whereIn('room_id', roomIds)
      .orderBy([
        { column: 'room_id', order: 'asc' },
        { column: 'seq', order: 'asc' },
      ])
      .select<Array<{ room_id: string; seq: number | string; membership: MembershipChange['membership'] }>>('room_id', 'seq', 'membership');
    for (const r of rows) {
      const log = out.get(r.room_id) ?? [];
      log.push({ seq: Number(r.seq), membership: r.membership });
      out.set(r.room_id, log);
    }
    return out;
  }

  /** Per room, the position of the newest stream note about the user's own membership there. */
  async lastOwnMembershipPositions(userId: string, roomIds: string[]): Promise<Map<string, number>> {
    if (roomIds.length === 0) return new Map();
    const rows = await this.db('stream')
      .where('user_id', userId)
      .andWhere('kind', 'event')
      .whereIn('room_id', roomIds)
      .groupBy('room_id')
      .select<Array<{ room_id: string; max: number | string }>>('room_id', this.db.raw('max(position) as max'));
    return new Map(rows.map((r) => [r.room_id, Number(r.max)]));
  }

  /** Every position at or below this may have been pruned: a client behind it must resync. */
  async prunedThrough(): Promise<number> {
    const row = await this.db('stream_horizon').where({ id: 1 }).first<{ pruned_through: number | string } | undefined>();
    return Number(row?.pruned_through ?? 0);
  }

  /**
   * Deletes notes written before `olderThanTs`, at most `batch` rows per statement. The
   * horizon moves first, so a reader that finds a hole also finds the horizon past it.
   */
  async prune(olderThanTs: number, batch: number): Promise<{ through: number; deleted: number }> {
    const row = await this.db('stream')
      .where('created_ts', '<', olderThanTs)
      .max<{ max: number | string | null }>('position as max')
      .first();
    const through = Number(row?.max ?? 0);
    if (through === 0) return { through: await this.prunedThrough(), deleted: 0 };
    await this.db('stream_horizon').where({ id: 1 }).andWhere('pruned_through', '<', through).update({ pruned_through: through });
    let deleted = 0;
    for (;;) {
      const n = await this.db('stream')
        .whereIn('position', this.db('stream').where('position', '<=', through).orderBy('position', 'asc').limit(batch).select('position'))
        .delete();
      deleted += n;
      if (n < batch) break;
    }
    return { through: await this.prunedThrough(), deleted };
  }
}

export interface PresenceRow {
  user_id: string;
  presence: 'online' | 'idle' | 'offline';
  last_active_ts: number | null;
}

export class PresenceRepository {
  constructor(private readonly db: Db) {}

  async get(userId: string): Promise<PresenceRow | undefined> {
    return this.db<PresenceRow>('presence').where({ user_id: userId }).first();
  }

  /** The rows of those of `userIds` that have one, in one query. */
  async getMany(userIds: string[]): Promise<PresenceRow[]> {
    if (userIds.length === 0) return [];
    return this.db<PresenceRow>('presence').whereRaw('user_id = any(?)', [userIds]);
  }

  async put(row: PresenceRow, trx: Db = this.db): Promise<void> {
    await trx('presence').insert(row).onConflict('user_id').merge();
  }

  /** Whether both users are joined to at least one common room. */
  async shareRoom(a: string, b: string): Promise<boolean> {
    const row = await this.db('memberships as x')
      .join('memberships as y', 'y.room_id', 'x.room_id')
      .where({ 'x.user_id': a, 'x.membership': 'join', 'y.user_id': b, 'y.membership': 'join' })
      .first('x.room_id');
    return row !== undefined;
  }
}
