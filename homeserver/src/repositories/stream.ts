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
const POSITION_LOCK = 7_261_001;

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

  async pruneKinds(kinds: string[], olderThanTs: number): Promise<number> {
    return this.db('stream').whereIn('kind', kinds).andWhere('created_ts', '<', olderThanTs).delete();
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

  async put(row: PresenceRow, trx: Db = this.db): Promise<void> {
    await trx('presence').insert(row).onConflict('user_id').merge();
  }
}
