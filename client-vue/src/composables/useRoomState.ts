import type { ClientEvent, PermissionName } from '@parley/schemas';
import { computed, type Ref, watch } from 'vue';
import { authStateOf, can, outranks, positionOf } from '../lib/roles.js';
import { useRoomsStore } from '../stores/rooms.js';
import { useSessionStore } from '../stores/session.js';

/** A room's current state (loaded once, then kept live by the stream) and what I may do in it. */
export function useRoomState(roomId: Ref<string>) {
  const rooms = useRoomsStore();
  const session = useSessionStore();
  watch(
    roomId,
    (id) => {
      void rooms.loadState(id).catch(() => {});
      void rooms.loadMembers(id).catch(() => {});
    },
    { immediate: true },
  );
  const events = computed(() => rooms.states.get(roomId.value) ?? []);
  const loaded = computed(() => rooms.states.has(roomId.value));
  const auth = computed(() => authStateOf(events.value));
  function content(type: string, key = ''): Record<string, unknown> | undefined {
    return events.value.find((e: ClientEvent) => e.type === type && e.state_key === key)?.content;
  }
  const myPosition = computed(() => positionOf(auth.value, session.userId));
  return {
    events,
    loaded,
    auth,
    content,
    myPosition,
    iCan: (p: PermissionName) => can(auth.value, session.userId, p),
    iOutrank: (userId: string) => outranks(auth.value, session.userId, userId),
  };
}
