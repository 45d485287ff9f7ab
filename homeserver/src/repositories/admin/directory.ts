import type { AdminRoom, AdminUser } from '@parley/schemas';
import type { Db } from '../../db/database.js';

const like = (s: string) => `%${s.replace(/[%_\\]/g, '\\$&')}%`;

export interface AdminMedia {
  media_id: string;
  uploader: string | null;
  origin: string | null;
  content_type: string;
  filename: string | null;
  size: number;
  created_ts: number;
  quarantined_ts: number | null;
  quarantined_by: string | null;
}

function toMedia(r: Record<string, unknown>): AdminMedia {
  return {
    media_id: r.media_id as string,
    uploader: (r.uploader as string | null) ?? null,
    origin: (r.origin as string | null) ?? null,
    content_type: r.content_type as string,
    filename: (r.filename as string | null) ?? null,
    size: Number(r.size),
    created_ts: Number(r.created_ts),
    quarantined_ts: r.quarantined_ts === null || r.quarantined_ts === undefined ? null : Number(r.quarantined_ts),
    quarantined_by: (r.quarantined_by as string | null) ?? null,
  };
}

/** The read side of the admin console: users, rooms and media as an operator searches them. */
export class AdminDirectoryRepository {
  constructor(private readonly db: Db) {}

  async searchUsers(
    q: string | undefined,
    limit: number,
    offset: number,
    filter: 'all' | 'admins' | 'deactivated',
  ): Promise<{ total: number; users: AdminUser[] }> {
    const base = this.db('users as u');
    if (q) base.where((w) => w.where('u.user_id', 'ilike', like(q)).orWhere('u.displayname', 'ilike', like(q)));
    if (filter === 'admins') base.where('u.is_admin', true);
    if (filter === 'deactivated') base.where('u.deactivated', true);
    const [count] = await base.clone().count<{ n: string }[]>({ n: '*' });
    const rows = await base
      .orderBy('u.created_ts', 'desc')
      .orderBy('u.user_id')
      .limit(limit)
      .offset(offset)
      .select(
        'u.user_id',
        'u.displayname',
        'u.is_admin',
        'u.deactivated',
        'u.created_ts',
        this.db.raw('(select max(last_seen_ts) from devices d where d.user_id = u.user_id) as last_seen_ts'),
        this.db.raw('(select count(*)::int from devices d where d.user_id = u.user_id) as devices'),
        this.db.raw('(select coalesce(sum(size), 0) from media m where m.uploader = u.user_id) as media_bytes'),
      );
    return {
      total: Number(count?.n ?? 0),
      users: rows.map((r) => ({
        ...r,
        created_ts: Number(r.created_ts),
        last_seen_ts: r.last_seen_ts === null ? null : Number(r.last_seen_ts),
        media_bytes: Number(r.media_bytes),
      })),
    };
  }

  async user(userId: string): Promise<AdminUser | undefined> {
    const { users } = await this.searchUsersExact(userId);
    return users[0];
  }

  private async searchUsersExact(userId: string): Promise<{ users: AdminUser[] }> {
    const rows = await this.db('users as u')
      .where('u.user_id', userId)
      .select(
        'u.user_id',
        'u.displayname',
        'u.is_admin',
        'u.deactivated',
        'u.created_ts',
        this.db.raw('(select max(last_seen_ts) from devices d where d.user_id = u.user_id) as last_seen_ts'),
        this.db.raw('(select count(*)::int from devices d where d.user_id = u.user_id) as devices'),
        this.db.raw('(select coalesce(sum(size), 0) from media m where m.uploader = u.user_id) as media_bytes'),
      );
    return {
      users: rows.map((r) => ({
        ...r,
        created_ts: Number(r.created_ts),
        last_seen_ts: r.last_seen_ts === null ? null : Number(r.last_seen_ts),
        media_bytes: Number(r.media_bytes),
      })),
    };
  }

  async setDeactivated(userId: string, deactivated: boolean, trx: Db = this.db): Promise<boolean> {
    return (await trx('users').where({ user_id: userId }).update({ deactivated })) > 0;
  }

  async sessions(
    userId: string,
  ): Promise<
    Array<{ device_id: string; display_name: string | null; created_ts: number; last_seen_ts: number | null; last_seen_ip: string | null }>
  > {
    const rows = await this.db('devices').where({ user_id: userId }).orderBy('created_ts', 'asc');
    return rows.map((r) => ({
      device_id: r.device_id,
      display_name: r.display_name,
      created_ts: Number(r.created_ts),
      last_seen_ts: r.last_seen_ts === null ? null : Number(r.last_seen_ts),
      last_seen_ip: r.last_seen_ip,
    }));
  }

  async roomsOfUser(userId: string): Promise<Array<{ room_id: string; membership: string; name: string | null }>> {
    return this.db('memberships as m')
      .where('m.user_id', userId)
      .orderBy('m.room_id')
      .limit(1000)
      .select('m.room_id', 'm.membership', this.nameOf('m.room_id'));
  }

  private nameOf(roomCol: string) {
    return this.db.raw(
      `(select e.event->'content'->>'name' from room_state s join events e on e.event_id = s.event_id
        where s.room_id = ${roomCol} and s.type = 'room.name' and s.state_key = '') as name`,
    );
  }

  async searchRooms(
    q: string | undefined,
    limit: number,
    offset: number,
    serverName: string,
  ): Promise<{ total: number; rooms: AdminRoom[] }> {
    const base = this.db('rooms as r');
    if (q) {
      base.where((w) =>
        w.where('r.room_id', 'ilike', like(q)).orWhereExists((sub) =>
          sub
            .from('room_state as s')
            .join('events as e', 'e.event_id', 's.event_id')
            .whereRaw('s.room_id = r.room_id')
            .whereIn('s.type', ['room.name', 'room.topic'])
            .andWhereRaw("((e.event->'content'->>'name') ilike ? or (e.event->'content'->>'topic') ilike ?)", [like(q), like(q)]),
        ),
      );
    }
    const [count] = await base.clone().count<{ n: string }[]>({ n: '*' });
    const rows = await base
      .orderBy('r.created_ts', 'desc')
      .limit(limit)
      .offset(offset)
      .select(...this.roomColumns(serverName));
    return { total: Number(count?.n ?? 0), rooms: rows };
  }

  /** What the console shows of a room, for one room or a page of them. */
  private roomColumns(serverName: string) {
    return [
      'r.room_id',
      'r.host',
      'r.kind',
      'r.creator',
      'r.published',
      this.nameOf('r.room_id'),
      this.db.raw(`(select count(*)::int from memberships m where m.room_id = r.room_id and m.membership = 'join') as joined_members`),
      this.db.raw(
        `(select count(*)::int from memberships m where m.room_id = r.room_id and m.membership = 'join' and m.user_id like ?) as local_members`,
        [`%:${serverName}`],
      ),
      this.db.raw('r.current_seq as events'),
      this.db.raw('exists (select 1 from blocked_rooms b where b.room_id = r.room_id) as blocked'),
    ];
  }

  async room(roomId: string, serverName: string): Promise<AdminRoom | undefined> {
    const rows = await this.db('rooms as r')
      .where('r.room_id', roomId)
      .select(...this.roomColumns(serverName));
    return rows[0];
  }

  async isRoomBlocked(roomId: string): Promise<boolean> {
    return (await this.db('blocked_rooms').where({ room_id: roomId }).first()) !== undefined;
  }

  async blockRoom(roomId: string, by: string, reason: string | null, now: number): Promise<void> {
    await this.db('blocked_rooms')
      .insert({ room_id: roomId, blocked_by: by, reason, created_ts: now })
      .onConflict('room_id')
      .merge(['reason']);
  }

  async unblockRoom(roomId: string): Promise<boolean> {
    return (await this.db('blocked_rooms').where({ room_id: roomId }).delete()) > 0;
  }

  async blockedRooms(): Promise<Array<{ room_id: string; reason: string | null; blocked_by: string; created_ts: number }>> {
    return (await this.db('blocked_rooms').orderBy('created_ts', 'desc').limit(1000)).map((r) => ({
      ...r,
      created_ts: Number(r.created_ts),
    }));
  }

  /** Deletes the room's rows here (log, state, memberships, aliases cascade). */
  async purgeRoom(roomId: string): Promise<boolean> {
    return this.db.transaction(async (trx) => {
      await trx('remote_invites').where({ room_id: roomId }).delete();
      await trx('txn_ids').where({ room_id: roomId }).delete();
      return (await trx('rooms').where({ room_id: roomId }).delete()) > 0;
    });
  }

  async listMedia(opts: {
    uploader?: string;
    quarantined?: boolean;
    limit: number;
    offset: number;
    order: 'newest' | 'largest';
  }): Promise<{ total: number; media: AdminMedia[] }> {
    const base = this.db('media');
    if (opts.uploader) base.where({ uploader: opts.uploader });
    if (opts.quarantined) base.whereNotNull('quarantined_ts');
    const [count] = await base.clone().count<{ n: string }[]>({ n: '*' });
    const rows = await base
      .orderBy(opts.order === 'largest' ? 'size' : 'created_ts', 'desc')
      .orderBy('media_id')
      .limit(opts.limit)
      .offset(opts.offset)
      .select('*');
    return { total: Number(count?.n ?? 0), media: rows.map(toMedia) };
  }

  async media(mediaId: string): Promise<AdminMedia | undefined> {
    const row = await this.db('media').where({ media_id: mediaId }).first();
    return row ? toMedia(row) : undefined;
  }

  async mediaUsage(limit: number): Promise<{
    total_bytes: number;
    files: number;
    remote_bytes: number;
    quarantined: number;
    top: Array<{ uploader: string; bytes: number; files: number }>;
  }> {
    const [totals] = await this.db('media').select(
      this.db.raw('coalesce(sum(size), 0) as total'),
      this.db.raw('count(*)::int as files'),
      this.db.raw('coalesce(sum(size) filter (where origin is not null), 0) as remote'),
      this.db.raw('count(*) filter (where quarantined_ts is not null)::int as quarantined'),
    );
    const top = await this.db('media')
      .whereNotNull('uploader')
      .groupBy('uploader')
      .orderByRaw('sum(size) desc')
      .limit(limit)
      .select('uploader', this.db.raw('sum(size) as bytes'), this.db.raw('count(*)::int as files'));
    return {
      total_bytes: Number(totals?.total ?? 0),
      files: totals?.files ?? 0,
      remote_bytes: Number(totals?.remote ?? 0),
      quarantined: totals?.quarantined ?? 0,
      top: top.map((t: { uploader: string; bytes: string; files: number }) => ({
        uploader: t.uploader,
        bytes: Number(t.bytes),
        files: t.files,
      })),
    };
  }

  async setQuarantine(mediaId: string, by: string | null, now: number | null): Promise<boolean> {
    return (await this.db('media').where({ media_id: mediaId }).update({ quarantined_ts: now, quarantined_by: by })) > 0;
  }

  async deleteMedia(mediaId: string): Promise<boolean> {
    return (await this.db('media').where({ media_id: mediaId }).delete()) > 0;
  }
}
