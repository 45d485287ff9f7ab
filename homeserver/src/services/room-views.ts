import { can, canSee, type StateMap, stateKey as stateMapKey } from '@parley/federation/room';
import type { ClientEvent, Member, PublicRoom, RoomEvent, RoomSummary } from '@parley/schemas';
import { forbidden, notFound, ParleyError } from '../errors.js';
import type { EventRepository } from '../repositories/events.js';
import type { AliasRepository, ReadMarkerRepository, RemoteInviteRepository } from '../repositories/room-extras.js';
import type { RoomRepository, RoomRow } from '../repositories/rooms.js';
import type { Clock } from './clock.js';
import type { AuthContext } from './sessions.js';
import type { Reader, TimelineService } from './timeline.js';

const SUMMARY_TYPES = ['room.name', 'room.topic', 'room.avatar', 'room.encryption', 'room.canonical_alias', 'room.create'];

function str(ev: RoomEvent | undefined, key: string): string | null {
  const v = ev?.content[key];
  return typeof v === 'string' ? v : null;
}

/** Read models over rooms: the caller's room list, members, state, directory, hierarchy, aliases. */
export class RoomViews {
  constructor(
    private readonly rooms: RoomRepository,
    private readonly events: EventRepository,
    private readonly aliases: AliasRepository,
    private readonly markers: ReadMarkerRepository,
    private readonly timeline: TimelineService,
    private readonly clock: Clock,
    private readonly serverName: string,
    private readonly remoteInvites?: RemoteInviteRepository,
  ) {}

  private async summaryState(roomId: string): Promise<Map<string, RoomEvent>> {
    const events = await this.rooms.stateEvents(
      roomId,
      SUMMARY_TYPES.map((type) => ({ type, stateKey: '' })),
    );
    return new Map(events.map((e) => [e.type, e]));
  }

  async list(auth: AuthContext): Promise<RoomSummary[]> {
    const mine = await this.rooms.roomsOf(auth.userId);
    const ids = mine.map((m) => m.room_id);
    const [rows, joined, markers, latest] = await Promise.all([
      this.rooms.roomsByIds(ids),
      this.rooms.countMembers(ids, 'join'),
      this.markers.forUser(auth.userId, ids),
      this.events.latestMessage(ids),
    ]);
    const unread = await this.events.countUnread(
      auth.userId,
      mine.filter((m) => m.membership === 'join').map((m) => ({ roomId: m.room_id, afterSeq: markers.get(m.room_id) ?? 0 })),
    );
    const byId = new Map(rows.map((r) => [r.room_id, r]));
    // The preview is a message the caller may read: under joined or invited visibility the
    // newest message can predate their join (shared and world-readable ones are readable).
    const joinedIds = new Set(mine.filter((m) => m.membership === 'join').map((m) => m.room_id));
    const previews: typeof latest = [];
    for (const row of latest) {
      if (!joinedIds.has(row.room_id)) continue;
      if (row.visibility === 'joined' || row.visibility === 'invited') {
        const log = await this.rooms.membershipLog(row.room_id, auth.userId);
        if (!canSee(log, row.seq, row.visibility)) continue;
      }
      previews.push(row);
    }
    const lastEvents = new Map((await this.timeline.toClient(previews, auth)).map((e) => [e.room_id, e]));
    const out: RoomSummary[] = [];
    for (const m of mine) {
      const room = byId.get(m.room_id);
      if (!room) continue;
      const state = await this.summaryState(room.room_id);
      out.push({
        room_id: room.room_id,
        kind: room.kind,
        membership: m.membership,
        name: str(state.get('room.name'), 'name'),
        topic: str(state.get('room.topic'), 'topic'),
        avatar_url: str(state.get('room.avatar'), 'url'),
        canonical_alias: str(state.get('room.canonical_alias'), 'alias'),
        joined_members: joined.get(room.room_id) ?? 0,
        unread_count: unread.get(room.room_id) ?? 0,
        last_event: m.membership === 'join' ? (lastEvents.get(room.room_id) ?? null) : null,
        parent: room.parent_id,
        encrypted: state.has('room.encryption'),
        is_direct: state.get('room.create')?.content.is_direct === true,
      });
    }
    // Invites to rooms hosted elsewhere that this server has no copy of yet.
    for (const inv of this.remoteInvites ? await this.remoteInvites.forUser(auth.userId) : []) {
      if (out.some((r) => r.room_id === inv.room_id)) continue;
      out.push({
        room_id: inv.room_id,
        kind: 'room',
        membership: 'invite',
        name: null,
        topic: null,
        avatar_url: null,
        canonical_alias: null,
        joined_members: 0,
        unread_count: 0,
        last_event: null,
        parent: null,
        encrypted: false,
      });
    }
    // Most recently active first.
    return out.sort((a, b) => (b.last_event?.origin_ts ?? 0) - (a.last_event?.origin_ts ?? 0));
  }

  /**
   * State events of the given types as this reader may see them: the present, or as of their
   * departure for a former member (issue 10, M1).
   */
  private async readableState(reader: Reader, keys: Array<{ type: string; stateKey?: string }>): Promise<RoomEvent[]> {
    const roomId = reader.room.room_id;
    if (reader.upTo === Number.POSITIVE_INFINITY) return this.rooms.stateEvents(roomId, keys);
    return (await this.events.stateBefore(roomId, reader.upTo + 1, keys)).map((r) => r.event);
  }

  async members(auth: AuthContext, roomId: string): Promise<Member[]> {
    const reader = await this.timeline.reader(auth, roomId);
    const members =
      reader.upTo === Number.POSITIVE_INFINITY ? await this.rooms.members(roomId) : await this.rooms.membersAt(roomId, reader.upTo);
    const memberEvents = new Map((await this.readableState(reader, [{ type: 'room.member' }])).map((e) => [e.state_key as string, e]));
    const [rolesEvent] = await this.readableState(reader, [{ type: 'room.roles', stateKey: '' }]);
    const roles = (rolesEvent?.content.users ?? {}) as Record<string, string[]>;
    return members.map((m) => ({
      user_id: m.user_id,
      membership: m.membership,
      displayname: str(memberEvents.get(m.user_id), 'displayname'),
      avatar_url: str(memberEvents.get(m.user_id), 'avatar_url'),
      roles: roles[m.user_id] ?? [],
    }));
  }

  async state(auth: AuthContext, roomId: string): Promise<ClientEvent[]> {
    const reader = await this.timeline.reader(auth, roomId);
    const rows =
      reader.upTo === Number.POSITIVE_INFINITY
        ? await this.events.findMany(await this.rooms.stateEventIds(roomId))
        : await this.events.stateBefore(roomId, reader.upTo + 1);
    return this.timeline.toClient(
      rows.sort((a, b) => a.seq - b.seq),
      reader,
    );
  }

  async stateContent(auth: AuthContext, roomId: string, type: string, stateKey: string): Promise<Record<string, unknown>> {
    const reader = await this.timeline.reader(auth, roomId);
    const [ev] = await this.readableState(reader, [{ type, stateKey }]);
    if (!ev) throw notFound(`no ${type} state with key "${stateKey}"`);
    return ev.content;
  }

  async publicRoom(room: RoomRow): Promise<PublicRoom> {
    const state = await this.summaryState(room.room_id);
    const joined = await this.rooms.countMembers([room.room_id], 'join');
    return {
      room_id: room.room_id,
      name: str(state.get('room.name'), 'name'),
      topic: str(state.get('room.topic'), 'topic'),
      canonical_alias: str(state.get('room.canonical_alias'), 'alias'),
      joined_members: joined.get(room.room_id) ?? 0,
      kind: room.kind,
    };
  }

  async directory(limit: number, since: string | undefined, search: string | null): Promise<{ chunk: PublicRoom[]; next?: string }> {
    const offset = since === undefined ? 0 : Number(/^o(\d{1,9})$/.exec(since)?.[1] ?? Number.NaN);
    if (!Number.isInteger(offset))
      throw new ParleyError(400, 'PARLEY_INVALID_PARAM', 'since is not a token from this server', { field: 'since' });
    const rows = await this.rooms.publishedRooms(limit + 1, offset, search);
    const chunk = await Promise.all(rows.slice(0, limit).map((r) => this.publicRoom(r)));
    return rows.length > limit ? { chunk, next: `o${offset + limit}` } : { chunk };
  }

  async hierarchy(auth: AuthContext, spaceId: string): Promise<{ room: PublicRoom; children: PublicRoom[] }> {
    const reader = await this.timeline.reader(auth, spaceId);
    if (reader.upTo !== Number.POSITIVE_INFINITY) throw forbidden('you are no longer a member of this space');
    const children = [];
    for (const child of await this.rooms.children(spaceId)) {
      if (await this.childListed(auth.userId, child)) children.push(child);
    }
    return { room: await this.publicRoom(reader.room), children: await Promise.all(children.map((c) => this.publicRoom(c))) };
  }

  // An invite-only channel's name and topic are for its members: the hierarchy lists it only
  // to those joined or invited there (issue 10, L11). Public and knock channels are listed.
  private async childListed(userId: string, child: RoomRow): Promise<boolean> {
    if (child.published) return true;
    const [rules] = await this.rooms.stateEvents(child.room_id, [{ type: 'room.join_rules', stateKey: '' }]);
    const rule = rules?.content.join_rule;
    if (rule === 'public' || rule === 'knock') return true;
    const membership = await this.rooms.membership(child.room_id, userId);
    return membership === 'join' || membership === 'invite';
  }

  async resolveAlias(alias: string): Promise<{ room_id: string; servers: string[] }> {
    const roomId = await this.aliases.resolve(alias);
    if (!roomId) throw notFound(`no room has the alias ${alias}`);
    return { room_id: roomId, servers: [this.serverName] };
  }

  private async canManage(auth: AuthContext, roomId: string): Promise<boolean> {
    const room = await this.rooms.find(roomId);
    if (!room) throw notFound(`no room ${roomId} on this server`);
    const keys = ['room.create', 'room.roles'].map((type) => ({ type, stateKey: '' }));
    keys.push({ type: 'room.member', stateKey: auth.userId });
    const state: StateMap = new Map();
    for (const ev of await this.rooms.stateEvents(roomId, keys)) state.set(stateMapKey(ev.type, ev.state_key ?? ''), ev);
    if (room.parent_id && !state.has(stateMapKey('room.roles', ''))) {
      const [roles] = await this.rooms.stateEvents(room.parent_id, [{ type: 'room.roles', stateKey: '' }]);
      if (roles) state.set(stateMapKey('room.roles', ''), roles);
    }
    const joined = state.get(stateMapKey('room.member', auth.userId))?.content.membership === 'join';
    return joined && can(state, auth.userId, 'MANAGE_ROOM');
  }

  async putAlias(auth: AuthContext, alias: string, roomId: string): Promise<void> {
    if (!alias.endsWith(`:${this.serverName}`)) throw forbidden('aliases can only be created on their own server');
    if (!(await this.canManage(auth, roomId))) throw forbidden('you need MANAGE_ROOM in the room to give it an alias');
    if (!(await this.aliases.insert(alias, roomId, auth.userId, this.clock.now()))) {
      throw new ParleyError(409, 'PARLEY_ALIAS_IN_USE', `the alias ${alias} is taken`);
    }
  }

  async deleteAlias(auth: AuthContext, alias: string): Promise<void> {
    const row = await this.aliases.find(alias);
    if (!row) throw notFound(`no alias ${alias}`);
    if (row.created_by !== auth.userId && !auth.isAdmin && !(await this.canManage(auth, row.room_id))) {
      throw forbidden('only the alias creator, a room manager or a server admin may delete it');
    }
    await this.aliases.delete(alias);
  }
}
