import type { Db } from '../db/database.js';

/** Idempotent send bookkeeping: (user, device, txn_id) → event. */
export class TxnRepository {
  constructor(private readonly db: Db) {}

  async find(
    userId: string,
    deviceId: string,
    txnId: string,
    trx: Db = this.db,
  ): Promise<{ room_id: string; event_id: string } | undefined> {
    return trx('txn_ids').where({ user_id: userId, device_id: deviceId, txn_id: txnId }).first('room_id', 'event_id');
  }

  /**
   * A send's two first questions in one round trip: was this txn already used (its room and
   * event), and which server hosts the room (null when this server does not know the room).
   */
  async findWithRoomHost(
    userId: string,
    deviceId: string,
    txnId: string,
    roomId: string,
  ): Promise<{ txn: { room_id: string; event_id: string } | undefined; host: string | null }> {
    const result = await this.db.raw<{
      rows: Array<{ room_id: string | null; event_id: string | null; room_host: string | null }>;
    }>(
      `select t.room_id, t.event_id, r.host as room_host
         from (select 1) as one
         left join txn_ids t on t.user_id = ? and t.device_id = ? and t.txn_id = ?
         left join rooms r on r.room_id = ?`,
      [userId, deviceId, txnId, roomId],
    );
    const row = result.rows[0];
    const txn = row?.room_id != null && row.event_id != null ? { room_id: row.room_id, event_id: row.event_id } : undefined;
    return { txn, host: row?.room_host ?? null };
  }

  /** txn_id of each event the given device sent, so it can reconcile its pending messages. */
  async forEvents(userId: string, deviceId: string, eventIds: string[]): Promise<Map<string, string>> {
    if (eventIds.length === 0) return new Map();
    const rows = await this.db('txn_ids')
      .where({ user_id: userId, device_id: deviceId })
      .whereIn('event_id', eventIds)
      .select<{ event_id: string; txn_id: string }[]>('event_id', 'txn_id');
    return new Map(rows.map((r) => [r.event_id, r.txn_id]));
  }

  async insert(row: TxnRow, trx: Db): Promise<void> {
    await trx('txn_ids').insert(row);
  }

  private waiting: Array<{ row: TxnRow; done: (err?: unknown) => void }> = [];

  /**
   * Inserts outside any transaction, together with the other rows asked for in the same turn
   * of the event loop (a batch of remote sends is answered at once): one INSERT for them all.
   * If it fails, each row is tried alone, so every caller gets its own row's outcome.
   */
  insertSoon(row: TxnRow): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.waiting.push({ row, done: (err) => (err === undefined ? resolve() : reject(err)) });
      if (this.waiting.length === 1) setImmediate(() => void this.flush());
    });
  }

  private async flush(): Promise<void> {
    const batch = this.waiting;
    this.waiting = [];
    try {
      await this.db('txn_ids').insert(batch.map((w) => w.row));
      for (const w of batch) w.done();
    } catch (err) {
      if (batch.length === 1) return (batch[0] as (typeof batch)[number]).done(err);
      await Promise.all(
        batch.map((w) =>
          this.insert(w.row, this.db).then(
            () => w.done(),
            (e) => w.done(e),
          ),
        ),
      );
    }
  }
}

export type TxnRow = { user_id: string; device_id: string; txn_id: string; room_id: string; event_id: string; created_ts: number };

export class AliasRepository {
  constructor(private readonly db: Db) {}

  async resolve(alias: string): Promise<string | undefined> {
    const row = await this.db('room_aliases').where({ alias }).first<{ room_id: string } | undefined>('room_id');
    return row?.room_id;
  }

  /** False when the alias is taken. */
  async insert(alias: string, roomId: string, createdBy: string, ts: number, trx: Db = this.db): Promise<boolean> {
    const rows = await trx('room_aliases')
      .insert({ alias, room_id: roomId, created_by: createdBy, created_ts: ts })
      .onConflict('alias')
      .ignore()
      .returning('alias');
    return rows.length === 1;
  }

  async find(alias: string): Promise<{ alias: string; room_id: string; created_by: string } | undefined> {
    return this.db('room_aliases').where({ alias }).first();
  }

  async delete(alias: string): Promise<boolean> {
    return (await this.db('room_aliases').where({ alias }).delete()) > 0;
  }

  async forRooms(roomIds: string[]): Promise<Map<string, string>> {
    if (roomIds.length === 0) return new Map();
    const rows = await this.db('room_aliases')
      .whereIn('room_id', roomIds)
      .orderBy('created_ts', 'asc')
      .select<{ alias: string; room_id: string }[]>('alias', 'room_id');
    const out = new Map<string, string>();
    for (const r of rows) if (!out.has(r.room_id)) out.set(r.room_id, r.alias);
    return out;
  }
}

export class ReadMarkerRepository {
  constructor(private readonly db: Db) {}

  /** Moves the marker forward only (a stale receipt never moves it back). */
  /** True when the marker moved. */
  async advance(roomId: string, userId: string, eventId: string, seq: number, ts: number): Promise<boolean> {
    const result = await this.db.raw(
      `INSERT INTO read_markers (room_id, user_id, event_id, seq, ts) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (room_id, user_id) DO UPDATE SET event_id = EXCLUDED.event_id, seq = EXCLUDED.seq, ts = EXCLUDED.ts
       WHERE read_markers.seq < EXCLUDED.seq`,
      [roomId, userId, eventId, seq, ts],
    );
    return (result as { rowCount: number }).rowCount > 0;
  }

  async forUser(userId: string, roomIds: string[]): Promise<Map<string, number>> {
    if (roomIds.length === 0) return new Map();
    const rows = await this.db('read_markers')
      .where({ user_id: userId })
      .whereIn('room_id', roomIds)
      .select<{ room_id: string; seq: number }[]>('room_id', 'seq');
    return new Map(rows.map((r) => [r.room_id, r.seq]));
  }
}

export interface RemoteInviteRow {
  room_id: string;
  user_id: string;
  inviter: string;
  event: Record<string, unknown>;
  created_ts: number;
}

/** Invites from rooms hosted elsewhere that this server does not participate in yet. */
export class RemoteInviteRepository {
  /**
   * Pending invites one server may hold for one user: its oldest beyond this are dropped, so a
   * hostile server cannot fill the table (or a user's room list) with invites, nor push out
   * another server's (issue 10, class sweep of L10).
   */
  static readonly MAX_PER_SERVER = 50;

  constructor(private readonly db: Db) {}

  async put(row: RemoteInviteRow): Promise<void> {
    const host = row.room_id.slice(row.room_id.indexOf(':') + 1);
    await this.db.transaction(async (trx) => {
      await trx('remote_invites')
        .insert({ ...row, event: JSON.stringify(row.event) })
        .onConflict(['room_id', 'user_id'])
        .merge();
      await trx.raw(
        `delete from remote_invites where user_id = ? and room_id in (
           select room_id from remote_invites
           where user_id = ? and substring(room_id from position(':' in room_id) + 1) = ?
           order by created_ts desc, room_id desc offset ?)`,
        [row.user_id, row.user_id, host, RemoteInviteRepository.MAX_PER_SERVER],
      );
    });
  }

  async forUser(userId: string): Promise<RemoteInviteRow[]> {
    return this.db<RemoteInviteRow>('remote_invites').where({ user_id: userId }).orderBy('created_ts', 'asc');
  }

  async find(roomId: string, userId: string): Promise<RemoteInviteRow | undefined> {
    return this.db<RemoteInviteRow>('remote_invites').where({ room_id: roomId, user_id: userId }).first();
  }

  async delete(roomId: string, userId: string): Promise<void> {
    await this.db('remote_invites').where({ room_id: roomId, user_id: userId }).delete();
  }
}
