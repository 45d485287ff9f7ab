import type { Membership, RoomEvent } from '@parley/schemas';
import type { Knex } from 'knex';
import type { Db } from '../db/database.js';
import { copyRows } from './copy.js';
import { containsPattern } from './like.js';

export interface RoomRow {
  room_id: string;
  host: string;
  creator: string;
  kind: 'room' | 'space';
  parent_id: string | null;
  published: boolean;
  current_seq: number;
  head_hash: string | null;
  lamport: number;
  created_ts: number;
  /** The log is complete from this seq (1, or above for rooms joined from a state snapshot). */
  history_from?: number;
}

/** Rooms, their current state and memberships. */
export class RoomRepository {
  constructor(private readonly db: Db) {}

  async insert(row: RoomRow, trx: Db): Promise<void> {
    await trx('rooms').insert(row);
  }

  async find(roomId: string, trx: Db = this.db): Promise<RoomRow | undefined> {
    return trx<RoomRow>('rooms').where({ room_id: roomId }).first();
  }

  /** Locks the room row: appends to one room's log are serialised by this lock. */
  async lock(roomId: string, trx: Db): Promise<RoomRow | undefined> {
    return trx<RoomRow>('rooms').where({ room_id: roomId }).forUpdate().first();
  }

  async advance(roomId: string, seq: number, headHash: string, lamport: number, trx: Db): Promise<void> {
    await trx('rooms').where({ room_id: roomId }).update({ current_seq: seq, head_hash: headHash, lamport });
  }

  /** The UPDATE that `advance` runs, built but not run: a part of a larger statement. */
  advanceQuery(roomId: string, seq: number, headHash: string, lamport: number, trx: Db): Knex.Sql {
    return trx('rooms').where({ room_id: roomId }).update({ current_seq: seq, head_hash: headHash, lamport }).toSQL();
  }

  async setHistoryFrom(roomId: string, seq: number, trx: Db = this.db): Promise<void> {
    await trx('rooms').where({ room_id: roomId }).update({ history_from: seq });
  }

  async setPublished(roomId: string, published: boolean, trx: Db = this.db): Promise<void> {
    await trx('rooms').where({ room_id: roomId }).update({ published });
  }

  /** State events for the given (type, state_key) pairs, or whole types when stateKeys is omitted. */
  async stateEvents(roomId: string, keys: Array<{ type: string; stateKey?: string }>, trx: Db = this.db): Promise<RoomEvent[]> {
    if (keys.length === 0) return [];
    const rows = await trx('room_state as s')
      .join('events as e', 'e.event_id', 's.event_id')
      .where('s.room_id', roomId)
      .andWhere((q) => {
        for (const k of keys) {
          q.orWhere((w) => {
            w.where('s.type', k.type);
            if (k.stateKey !== undefined) w.andWhere('s.state_key', k.stateKey);
          });
        }
      })
      .select<{ event: RoomEvent }[]>('e.event');
    return rows.map((r) => r.event);
  }

  async stateEventIds(roomId: string): Promise<string[]> {
    const rows = await this.db('room_state').where({ room_id: roomId }).select<{ event_id: string }[]>('event_id');
    return rows.map((r) => r.event_id);
  }

  async allStateEvents(roomId: string, trx: Db = this.db): Promise<RoomEvent[]> {
    const rows = await trx('room_state as s')
      .join('events as e', 'e.event_id', 's.event_id')
      .where('s.room_id', roomId)
      .orderBy('s.seq', 'asc')
      .select<{ event: RoomEvent }[]>('e.event');
    return rows.map((r) => r.event);
  }

  async putState(roomId: string, type: string, stateKey: string, eventId: string, seq: number, trx: Db): Promise<void> {
    await trx('room_state')
      .insert({ room_id: roomId, type, state_key: stateKey, event_id: eventId, seq })
      .onConflict(['room_id', 'type', 'state_key'])
      .merge();
  }

  async putMembership(roomId: string, userId: string, membership: Membership, seq: number, trx: Db): Promise<void> {
    await trx('memberships').insert({ room_id: roomId, user_id: userId, membership, seq }).onConflict(['room_id', 'user_id']).merge();
    await trx('membership_log').insert({ room_id: roomId, user_id: userId, seq, membership });
  }

  /** State and memberships of a room joined from a snapshot, in a few statements (not one per row). */
  async putSnapshot(
    roomId: string,
    state: Array<{ type: string; state_key: string; event_id: string; seq: number; membership?: Membership }>,
    trx: Db,
  ): Promise<void> {
    for (let i = 0; i < state.length; i += 1000) {
      const chunk = state.slice(i, i + 1000);
      await trx('room_state')
        .insert(chunk.map((r) => ({ room_id: roomId, type: r.type, state_key: r.state_key, event_id: r.event_id, seq: r.seq })))
        .onConflict(['room_id', 'type', 'state_key'])
        .merge();
      const members = chunk.filter((r) => r.membership !== undefined);
      if (members.length === 0) continue;
      const rows = members.map((r) => ({ room_id: roomId, user_id: r.state_key, membership: r.membership, seq: r.seq }));
      await trx('memberships').insert(rows).onConflict(['room_id', 'user_id']).merge();
      await trx('membership_log').insert(rows).onConflict().ignore();
    }
  }

  /**
   * putSnapshot for a room created in the caller's transaction: state, memberships and the
   * membership log each in one COPY (no row of the room can exist yet, so nothing to merge).
   */
  async copySnapshotIntoNewRoom(
    roomId: string,
    state: Array<{ type: string; state_key: string; event_id: string; seq: number; membership?: Membership }>,
    trx: Db,
  ): Promise<void> {
    await copyRows(
      trx,
      'room_state',
      ['room_id', 'type', 'state_key', 'event_id', 'seq'],
      state.map((r) => [roomId, r.type, r.state_key, r.event_id, r.seq]),
    );
    const members = state.filter((r) => r.membership !== undefined).map((r) => [roomId, r.state_key, r.membership as string, r.seq]);
    await copyRows(trx, 'memberships', ['room_id', 'user_id', 'membership', 'seq'], members);
    await copyRows(trx, 'membership_log', ['room_id', 'user_id', 'membership', 'seq'], members);
  }

  async membership(roomId: string, userId: string, trx: Db = this.db): Promise<Membership | undefined> {
    const row = await trx('memberships')
      .where({ room_id: roomId, user_id: userId })
      .first<{ membership: Membership } | undefined>('membership');
    return row?.membership;
  }

  async membershipLog(roomId: string, userId: string): Promise<Array<{ seq: number; membership: Membership }>> {
    return this.db('membership_log').where({ room_id: roomId, user_id: userId }).orderBy('seq', 'asc').select('seq', 'membership');
  }

  async members(roomId: string, membership?: Membership): Promise<Array<{ user_id: string; membership: Membership; seq: number }>> {
    const q = this.db('memberships').where({ room_id: roomId });
    if (membership) q.andWhere({ membership });
    return q.orderBy('user_id', 'asc').select('user_id', 'membership', 'seq');
  }

  /** Memberships as they stood at `seq` (each user's latest change at or before it). */
  async membersAt(roomId: string, seq: number): Promise<Array<{ user_id: string; membership: Membership; seq: number }>> {
    return this.db('membership_log')
      .distinctOn('user_id')
      .where({ room_id: roomId })
      .andWhere('seq', '<=', seq)
      .orderBy([{ column: 'user_id' }, { column: 'seq', order: 'desc' }])
      .select('user_id', 'membership', 'seq');
  }

  async countMembers(roomIds: string[], membership: Membership): Promise<Map<string, number>> {
    if (roomIds.length === 0) return new Map();
    const rows = await this.db('memberships')
      .whereIn('room_id', roomIds)
      .andWhere({ membership })
      .groupBy('room_id')
      .select<{ room_id: string; n: number }[]>('room_id', this.db.raw('count(*)::int as n'));
    return new Map(rows.map((r) => [r.room_id, r.n]));
  }

  /** Rooms where the user is joined, invited or knocking. */
  async roomsOf(userId: string, trx: Db = this.db): Promise<Array<{ room_id: string; membership: Membership }>> {
    return trx('memberships').where({ user_id: userId }).whereIn('membership', ['join', 'invite', 'knock']).select('room_id', 'membership');
  }

  async roomsByIds(roomIds: string[]): Promise<RoomRow[]> {
    if (roomIds.length === 0) return [];
    return this.db<RoomRow>('rooms').whereIn('room_id', roomIds);
  }

  async publishedRooms(limit: number, offset: number, search: string | null): Promise<RoomRow[]> {
    const q = this.db<RoomRow>('rooms as r').where('r.published', true);
    if (search) {
      q.whereExists((sub) =>
        sub
          .from('room_state as s')
          .join('events as e', 'e.event_id', 's.event_id')
          .whereRaw('s.room_id = r.room_id')
          .whereIn('s.type', ['room.name', 'room.topic'])
          // Parenthesised: a bare `or` here escaped the room filter, so a private topic
          // that matched listed every published room (issue 10, M4).
          .andWhereRaw("((e.event->'content'->>'name') ilike ? or (e.event->'content'->>'topic') ilike ?)", [
            containsPattern(search),
            containsPattern(search),
          ]),
      );
    }
    return q.orderBy('r.created_ts', 'asc').limit(limit).offset(offset).select('r.*');
  }

  /** Servers with at least one joined member: the participants of the room. */
  /** Every membership change of one server's users in a room, in seq order (history visibility for servers). */
  async membershipLogOfServer(roomId: string, server: string): Promise<Array<{ user_id: string; seq: number; membership: Membership }>> {
    return this.db('membership_log')
      .where({ room_id: roomId })
      .andWhereRaw("substring(user_id from position(':' in user_id) + 1) = ?", [server])
      .orderBy('seq', 'asc')
      .select('user_id', 'seq', 'membership');
  }

  async memberServers(roomId: string, trx: Db = this.db): Promise<string[]> {
    const rows = await trx('memberships')
      .where({ room_id: roomId, membership: 'join' })
      .distinct(trx.raw("substring(user_id from position(':' in user_id) + 1) as server"));
    return (rows as Array<{ server: string }>).map((r) => r.server);
  }

  /**
   * Every other server we share a room with: the hosts of rooms a local user has joined and
   * the servers of the other joined members of those rooms, at most `limit`.
   */
  async sharedServers(self: string, limit: number): Promise<string[]> {
    const serverOf = "substring(user_id from position(':' in user_id) + 1)";
    const ours = this.db('memberships').where({ membership: 'join' }).andWhereRaw(`${serverOf} = ?`, [self]).select('room_id');
    const rows = await this.db
      .select('server')
      .from(
        this.db('memberships')
          .where({ membership: 'join' })
          .whereIn('room_id', ours)
          .select(this.db.raw(`${serverOf} as server`))
          .union((q) => q.from('rooms').whereIn('room_id', ours).select('host as server'))
          .as('shared'),
      )
      .whereNot('server', self)
      .distinct()
      .orderBy('server')
      .limit(limit);
    return (rows as Array<{ server: string }>).map((r) => r.server);
  }

  async children(parentId: string): Promise<RoomRow[]> {
    return this.db<RoomRow>('rooms').where({ parent_id: parentId }).orderBy('created_ts', 'asc');
  }
}
