import type { PresenceState } from '@parley/schemas';
import { defineStore } from 'pinia';
import { computed, reactive, ref, shallowRef } from 'vue';
import { createLiveSource } from '../live/source.js';
import type { ConnectionState, LiveSource } from '../live/types.js';
import { useE2eStore } from './e2e.js';
import { useNotificationsStore } from './notifications.js';
import { useRoomsStore } from './rooms.js';
import { useSessionStore } from './session.js';
import { useTimelineStore } from './timeline.js';

const ROOM_LIST_TYPES = new Set(['room.member', 'room.name', 'room.topic', 'room.avatar', 'room.canonical_alias', 'space.child']);

/** The live connection: which room is open, its state for the banner, typing and receipts. */
export const useLiveStore = defineStore('live', () => {
  const session = useSessionStore();
  const rooms = useRoomsStore();
  const timeline = useTimelineStore();
  const notifications = useNotificationsStore();
  const e2e = useE2eStore();
  const source = shallowRef<LiveSource | null>(null);
  const openRoom = ref<string | null>(null);
  /** Who is typing, by room (from the stream). */
  const typing = reactive(new Map<string, string[]>());
  /** Latest read receipt per room and user (from the stream). */
  const receipts = reactive(new Map<string, Map<string, string>>());
  /** Presence of people we share rooms with (from the stream, or read when a member list opens). */
  const presence = reactive(new Map<string, PresenceState>());

  const state = computed<ConnectionState>(() => source.value?.state.value ?? 'stopped');

  let roomsTimer: ReturnType<typeof setTimeout> | undefined;
  function refreshRoomsSoon(): void {
    clearTimeout(roomsTimer);
    roomsTimer = setTimeout(() => void rooms.refresh().catch(() => {}), 300);
  }

  function start(): void {
    if (source.value) return;
    // The encryption session opens first, so it sees every frame from the first one on.
    e2e.open();
    source.value = createLiveSource(session.getClient(), {
      frame: (f) => e2e.frame(f),
      openRoom: () => openRoom.value,
      refreshRooms: async () => {
        await rooms.refresh();
        // Polling (or a stream that skipped frames) brings no membership events: the open
        // room's member list, which its header counts, is read again with the room list.
        const open = openRoom.value;
        if (open && rooms.members.has(open)) void rooms.loadMembers(open).catch(() => {});
      },
      catchUp: (roomId) => timeline.catchUp(roomId),
      events: (roomId, events, unread) => {
        timeline.ingestLive(roomId, events, unread);
        for (const ev of events) {
          if (ev.state_key !== undefined) rooms.noteStateEvent(ev);
          // An encrypted message notifies with what it says once decrypted (never with ciphertext).
          else if (ev.type === 'room.encrypted')
            void e2e.readable(ev).then((d) => {
              // Decrypted: mentions of me in it count like any other.
              if (d !== ev) rooms.noteEvent(d, unread);
              notifications.consider(d, openRoom.value);
            });
          else notifications.consider(ev, openRoom.value);
        }
        // Membership, names and new rooms change the sidebar: re-read the list (coalesced).
        if (!rooms.byId.has(roomId) || events.some((e) => ROOM_LIST_TYPES.has(e.type))) refreshRoomsSoon();
        // A message from someone ends their typing notice before the server's timeout does.
        const senders = new Set(events.map((e) => e.sender));
        const typers = typing.get(roomId);
        if (typers?.some((u) => senders.has(u)))
          typing.set(
            roomId,
            typers.filter((u) => !senders.has(u)),
          );
      },
      typing: (roomId, userIds) => {
        typing.set(roomId, userIds);
      },
      receipt: (roomId, userId, eventId) => {
        const byUser = receipts.get(roomId) ?? new Map<string, string>();
        byUser.set(userId, eventId);
        receipts.set(roomId, byUser);
      },
      presence: (userId, state) => {
        presence.set(userId, state);
      },
      profile: (userId, displayname, avatarUrl) => rooms.noteProfile(userId, displayname, avatarUrl),
      sessionEnded: () => session.forget('Your session has ended. Sign in again.'),
    });
  }

  function stop(): void {
    clearTimeout(roomsTimer);
    source.value?.stop();
    source.value = null;
    void e2e.close();
    typing.clear();
    receipts.clear();
    presence.clear();
  }

  function focus(roomId: string | null): void {
    openRoom.value = roomId;
    if (roomId) source.value?.poke();
  }

  return { state, openRoom, typing, receipts, presence, source, start, stop, focus };
});
