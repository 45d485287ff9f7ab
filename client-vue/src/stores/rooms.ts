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
    for (const m of found) if (m.displayname || !names.has(m.user_id)) names.set(m.user_id, m.displayname);
    return found;
  }

  function reset(): void {
    list.value = [];
    loaded.value = false;
    names.clear();
    members.clear();
  }

  return {
    list,
    loaded,
    filter,
    names,
    members,
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
    reset,
  };
});
