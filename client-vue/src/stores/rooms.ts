import type { ClientEvent, CreateRoomRequest, Member, Membership, RoomSummary } from '@parley/schemas';
import { defineStore } from 'pinia';
import { computed, reactive, ref, shallowRef } from 'vue';
import { displayName } from '../lib/ids.js';
import { mentionsMe } from '../lib/mentions.js';
import { buildSidebar, directPartner, roomName } from '../lib/rooms.js';
import { useSessionStore } from './session.js';

const MEMBERSHIPS = new Set<string>(['join', 'invite', 'leave', 'ban', 'knock']);

function isRelation(ev: ClientEvent): boolean {
  const rel = ev.content.relates_to as { type?: string } | undefined;
  return rel?.type === 'replace' || rel?.type === 'annotation';
}

/** The signed-in account's rooms (list, unread counts, previews), members' names, and room actions. */
export const useRoomsStore = defineStore('rooms', () => {
  const session = useSessionStore();
  const list = shallowRef<RoomSummary[]>([]);
  const loaded = ref(false);
  const filter = ref('');
  /** Display names seen in member lists and profiles, by user ID. */
  const names = reactive(new Map<string, string | null>());
  const members = reactive(new Map<string, Member[]>());
  /** Unread messages that mention me, by room (event IDs, so a repeated frame counts once). */
  const mentioned = reactive(new Map<string, Set<string>>());
  const scannedForMentions = new Set<string>();
  /** Avatars (content URIs) seen in member lists and profile frames, by user ID. */
  const avatars = reactive(new Map<string, string | null>());
  /** Current state events of rooms whose settings were opened, kept up to date from the stream. */
  const states = reactive(new Map<string, ClientEvent[]>());

  const byId = computed(() => new Map(list.value.map((r) => [r.room_id, r])));
  /** What each room is called: its name, or for a direct message, the other person's name. */
  const labels = computed(() => {
    const out = new Map<string, string>();
    for (const r of list.value) {
      if (r.is_direct && !r.name) {
        const partner = directPartner(members.get(r.room_id), session.userId);
        out.set(r.room_id, partner ? displayName(partner, names) : 'Direct message');
      } else out.set(r.room_id, roomName(r));
    }
    return out;
  });
  const sidebar = computed(() => buildSidebar(list.value, filter.value, labels.value));

  function nameOf(room: RoomSummary): string {
    return labels.value.get(room.room_id) ?? roomName(room);
  }
  /**
   * How many people have joined: counted from the member list where it is loaded (the open
   * room's always is, and the stream keeps it current event by event), so the header and the
   * members panel always agree; else the room list's count.
   */
  function joinedCount(room: RoomSummary): number {
    const found = members.get(room.room_id);
    return found ? found.filter((m) => m.membership === 'join').length : room.joined_members;
  }
  const invites = computed(() => list.value.filter((r) => r.membership === 'invite'));

  async function refresh(): Promise<void> {
    const rooms = await session.api.list();
    list.value = rooms.filter((r) => r.membership === 'join' || r.membership === 'invite');
    loaded.value = true;
    for (const r of list.value) {
      if (r.unread_count === 0) {
        mentioned.delete(r.room_id);
        scannedForMentions.delete(r.room_id);
      } else if (!scannedForMentions.has(r.room_id) && r.membership === 'join') {
        scannedForMentions.add(r.room_id);
        void scanMentions(r.room_id, r.unread_count).catch(() => scannedForMentions.delete(r.room_id));
      }
    }
    // A direct message is named after the other person: read its members once.
    for (const r of list.value) if (r.is_direct && !members.has(r.room_id)) void loadMembers(r.room_id).catch(() => {});
  }

  function patch(roomId: string, change: Partial<RoomSummary>): void {
    list.value = list.value.map((r) => (r.room_id === roomId ? { ...r, ...change } : r));
  }

  /**
   * The server counts unread messages but not mentions: the newest unread messages are read
   * once (at most 50) and those mentioning me are counted; live events keep the count after.
   */
  async function scanMentions(roomId: string, unread: number): Promise<void> {
    const page = await session.api.messages(roomId, { dir: 'b', limit: Math.min(50, unread + 10) });
    const fromOthers = page.chunk.filter((e) => e.type === 'room.message' && e.sender !== session.userId && !isRelation(e));
    const newest = fromOthers.sort((a, b) => (b.seq ?? 0) - (a.seq ?? 0)).slice(0, unread);
    const ids = newest.filter((e) => mentionsMe(e, session.userId)).map((e) => e.event_id);
    if (ids.length > 0) mentioned.set(roomId, new Set([...(mentioned.get(roomId) ?? []), ...ids]));
  }

  function mentionCount(roomId: string): number {
    return mentioned.get(roomId)?.size ?? 0;
  }

  /** A live event arrived: update the preview and, when the server says so, the unread count. */
  function noteEvent(ev: ClientEvent, unread?: number): void {
    const room = byId.value.get(ev.room_id);
    if (!room) return;
    if (unread === 0) mentioned.delete(ev.room_id);
    else if (unread !== undefined && mentionsMe(ev, session.userId)) {
      mentioned.set(ev.room_id, new Set([...(mentioned.get(ev.room_id) ?? []), ev.event_id]));
    }
    const change: Partial<RoomSummary> = {};
    const rel = ev.content.relates_to as { type?: string; event_id?: string } | undefined;
    const last = room.last_event;
    if (rel?.type === 'replace') {
      // An edit of the message the preview shows: show what it says now (who said it stays).
      if (last && rel.event_id === last.event_id && ev.sender === last.sender)
        change.last_event = {
          ...last,
          unsigned: { ...last.unsigned, edit: { event_id: ev.event_id, origin_ts: ev.origin_ts, content: ev.content.new_content ?? {} } },
        } as ClientEvent;
    } else if (
      (ev.type === 'room.message' || ev.type === 'room.encrypted') &&
      rel?.type !== 'annotation' &&
      (last?.seq ?? 0) < (ev.seq ?? 0)
    ) {
      // Replies and thread replies are new messages too.
      change.last_event = ev;
    }
    // One's own message never makes a room unread (a count read before our receipt may say so).
    if (unread !== undefined && !(ev.sender === session.userId && unread > room.unread_count)) change.unread_count = unread;
    if (Object.keys(change).length > 0) patch(ev.room_id, change);
  }

  function markReadLocally(roomId: string): void {
    mentioned.delete(roomId);
    if (byId.value.get(roomId)?.unread_count) patch(roomId, { unread_count: 0 });
  }

  async function create(body: CreateRoomRequest): Promise<string> {
    const { room_id } = await session.api.create(body);
    await refresh();
    return room_id;
  }

  /** Opens the direct message with someone: an existing one (joined or invited), else a new one. */
  async function startDirect(userId: string, opts: { encrypted?: boolean } = {}): Promise<string> {
    for (const r of list.value) {
      if (!r.is_direct) continue;
      const found = members.get(r.room_id) ?? (await loadMembers(r.room_id).catch(() => []));
      if (directPartner(found, session.userId) === userId) {
        if (r.membership === 'invite') await join(r.room_id);
        return r.room_id;
      }
    }
    const roomId = await create({
      visibility: 'private',
      invite: [userId],
      is_direct: true,
      ...(opts.encrypted ? { encrypted: true } : {}),
    });
    await loadMembers(roomId).catch(() => {});
    return roomId;
  }

  async function join(roomIdOrAlias: string): Promise<string> {
    const { room_id } = await session.api.join(roomIdOrAlias.trim());
    await refresh();
    return room_id;
  }

  async function leave(roomId: string): Promise<void> {
    await session.api.leave(roomId);
    list.value = list.value.filter((r) => r.room_id !== roomId);
  }

  async function invite(roomId: string, userId: string): Promise<void> {
    await session.api.invite(roomId, userId.trim());
  }

  /** The latest member-list read asked for, by room: an answer to an earlier one is older than what the list shows. */
  const memberReads = new Map<string, number>();
  let memberReadSeq = 0;

  async function loadMembers(roomId: string): Promise<Member[]> {
    const mine = ++memberReadSeq;
    memberReads.set(roomId, mine);
    const found = await session.api.members(roomId);
    if (memberReads.get(roomId) !== mine) return members.get(roomId) ?? found;
    members.set(roomId, found);
    for (const m of found) {
      if (m.displayname || !names.has(m.user_id)) names.set(m.user_id, m.displayname);
      if (m.avatar_url || !avatars.has(m.user_id)) avatars.set(m.user_id, m.avatar_url);
    }
    return found;
  }

  /** A profile frame: names and avatars change everywhere at once. */
  function noteProfile(userId: string, displayname: string | null, avatarUrl: string | null): void {
    names.set(userId, displayname);
    avatars.set(userId, avatarUrl);
    if (userId === session.userId && session.profile) session.profile = { ...session.profile, displayname, avatar_url: avatarUrl };
  }

  async function loadState(roomId: string): Promise<ClientEvent[]> {
    const found = await session.api.getState(roomId);
    states.set(roomId, found);
    return found;
  }

  /** A state event arrived live: replace its predecessor in a loaded state, refresh members on membership changes. */
  function noteStateEvent(ev: ClientEvent): void {
    if (ev.state_key === undefined) return;
    const state = states.get(ev.room_id);
    if (state) {
      const kept = state.filter((e) => !(e.type === ev.type && e.state_key === ev.state_key));
      states.set(ev.room_id, [...kept, ev]);
    }
    if (ev.type === 'room.member') applyMember(ev);
    if ((ev.type === 'room.member' || ev.type === 'room.roles') && members.has(ev.room_id)) void loadMembers(ev.room_id).catch(() => {});
  }

  /**
   * A membership event says all there is to know of that person's membership: the loaded list
   * takes it at once (join, leave, kick, ban, invite), in the same tick as the timeline shows
   * it, rather than after the re-read that follows.
   */
  function applyMember(ev: ClientEvent): void {
    const list = members.get(ev.room_id);
    const userId = ev.state_key;
    const membership = ev.content.membership;
    if (!list || !userId || typeof membership !== 'string' || !MEMBERSHIPS.has(membership)) return;
    const text = (key: string) => (typeof ev.content[key] === 'string' ? (ev.content[key] as string) : null);
    const before = list.find((m) => m.user_id === userId);
    const next: Member = {
      user_id: userId,
      membership: membership as Membership,
      displayname: text('displayname'),
      avatar_url: text('avatar_url'),
      roles: before?.roles ?? [],
    };
    members.set(ev.room_id, before ? list.map((m) => (m.user_id === userId ? next : m)) : [...list, next]);
  }

  async function setState(roomId: string, type: string, content: Record<string, unknown>, stateKey = ''): Promise<void> {
    await session.api.setState(roomId, type, content, stateKey);
    // The stream brings the event too; reading the state now makes the panel exact at once.
    await loadState(roomId);
  }

  async function moderate(action: 'kick' | 'ban' | 'unban', roomId: string, userId: string, reason?: string): Promise<void> {
    const r = reason?.trim() || undefined;
    await session.api[action](roomId, userId, r);
    await loadMembers(roomId);
  }

  function reset(): void {
    list.value = [];
    loaded.value = false;
    names.clear();
    members.clear();
    memberReads.clear();
    avatars.clear();
    states.clear();
    mentioned.clear();
    scannedForMentions.clear();
  }

  return {
    list,
    loaded,
    filter,
    names,
    members,
    avatars,
    states,
    byId,
    labels,
    nameOf,
    joinedCount,
    sidebar,
    invites,
    refresh,
    noteEvent,
    mentionCount,
    markReadLocally,
    create,
    join,
    startDirect,
    leave,
    invite,
    loadMembers,
    loadState,
    noteProfile,
    noteStateEvent,
    setState,
    moderate,
    reset,
  };
});
