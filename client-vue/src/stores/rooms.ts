import type { ClientEvent, CreateRoomRequest, Member, RoomSummary } from '@parley/schemas';
import { defineStore } from 'pinia';
import { computed, reactive, ref, shallowRef } from 'vue';
import { buildSidebar } from '../lib/rooms.js';
import { useSessionStore } from './session.js';

/** The signed-in account's rooms (list, unread counts, previews), members' names, and room actions. */
export const useRoomsStore = defineStore('rooms', () => {
  const session = useSessionStore();
  const list = shallowRef<RoomSummary[]>([]);
  const loaded = ref(false);
  const filter = ref('');
  /** Display names seen in member lists and profiles, by user ID. */
  const names = reactive(new Map<string, string | null>());
  const members = reactive(new Map<string, Member[]>());
  /** Avatars (content URIs) seen in member lists and profile frames, by user ID. */
  const avatars = reactive(new Map<string, string | null>());
  /** Current state events of rooms whose settings were opened, kept up to date from the stream. */
  const states = reactive(new Map<string, ClientEvent[]>());

  const byId = computed(() => new Map(list.value.map((r) => [r.room_id, r])));
  const sidebar = computed(() => buildSidebar(list.value, filter.value));
  const invites = computed(() => list.value.filter((r) => r.membership === 'invite'));

  async function refresh(): Promise<void> {
    const rooms = await session.api.list();
    list.value = rooms.filter((r) => r.membership === 'join' || r.membership === 'invite');
    loaded.value = true;
  }

  function patch(roomId: string, change: Partial<RoomSummary>): void {
    list.value = list.value.map((r) => (r.room_id === roomId ? { ...r, ...change } : r));
  }

  /** A live event arrived: update the preview and, when the server says so, the unread count. */
  function noteEvent(ev: ClientEvent, unread?: number): void {
    const room = byId.value.get(ev.room_id);
    if (!room) return;
    const change: Partial<RoomSummary> = {};
    if (ev.type === 'room.message' && !ev.content.relates_to && (room.last_event?.seq ?? 0) < (ev.seq ?? 0)) change.last_event = ev;
    if (unread !== undefined) change.unread_count = unread;
    if (Object.keys(change).length > 0) patch(ev.room_id, change);
  }

  function markReadLocally(roomId: string): void {
    if (byId.value.get(roomId)?.unread_count) patch(roomId, { unread_count: 0 });
  }

  async function create(body: CreateRoomRequest): Promise<string> {
    const { room_id } = await session.api.create(body);
    await refresh();
    return room_id;
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

  async function loadMembers(roomId: string): Promise<Member[]> {
    const found = await session.api.members(roomId);
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
    if ((ev.type === 'room.member' || ev.type === 'room.roles') && members.has(ev.room_id)) void loadMembers(ev.room_id).catch(() => {});
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
    avatars.clear();
    states.clear();
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
    sidebar,
    invites,
    refresh,
    noteEvent,
    markReadLocally,
    create,
    join,
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
