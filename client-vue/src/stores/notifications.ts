import type { ClientEvent } from '@parley/schemas';
import { defineStore } from 'pinia';
import { ref } from 'vue';
import { notificationText, shouldNotify } from '../lib/notify.js';
import { useRoomsStore } from './rooms.js';
import { useSessionStore } from './session.js';

const STORAGE_KEY = 'parley.notifications.v1';

function supported(): boolean {
  return typeof window !== 'undefined' && 'Notification' in window;
}

/** Browser notifications for mentions and direct messages while the person looks elsewhere. */
export const useNotificationsStore = defineStore('notifications', () => {
  const rooms = useRoomsStore();
  const session = useSessionStore();
  const permission = ref<NotificationPermission | 'unsupported'>(supported() ? Notification.permission : 'unsupported');
  const enabled = ref(readEnabled());
  /** Set by the layout: how a click on a notification opens its room. */
  let open: (roomId: string) => void = () => {};
  const shown = new Set<string>();

  function readEnabled(): boolean {
    try {
      return window.localStorage.getItem(STORAGE_KEY) === 'on';
    } catch {
      return false;
    }
  }

  /** Must run from a click: browsers ask for permission only on a user gesture. */
  async function enable(): Promise<void> {
    if (!supported()) return;
    permission.value = await Notification.requestPermission();
    setEnabled(permission.value === 'granted');
  }

  function setEnabled(on: boolean): void {
    enabled.value = on;
    try {
      window.localStorage.setItem(STORAGE_KEY, on ? 'on' : 'off');
    } catch {
      // Without storage the choice lasts for this page.
    }
  }

  function onOpen(fn: (roomId: string) => void): void {
    open = fn;
  }

  /** A live event arrived in `roomId`; `openRoom` is the room on screen. */
  function consider(ev: ClientEvent, openRoom: string | null): void {
    if (supported()) permission.value = Notification.permission;
    const room = rooms.byId.get(ev.room_id);
    if (!room || shown.has(ev.event_id)) return;
    const watching = openRoom === ev.room_id && document.visibilityState === 'visible' && document.hasFocus();
    const direct = room.is_direct === true;
    if (!shouldNotify(ev, { me: session.userId, direct, watching, enabled: enabled.value, permission: permission.value })) return;
    shown.add(ev.event_id);
    if (shown.size > 500) shown.delete(shown.values().next().value as string);
    const { title, body } = notificationText(ev, rooms.nameOf(room), direct, rooms.names);
    try {
      const n = new Notification(title, { body, tag: ev.room_id });
      n.onclick = () => {
        window.focus();
        open(ev.room_id);
        n.close();
      };
    } catch {
      // Some browsers (Android Chrome) only notify from a service worker: nothing to show here.
    }
  }

  return { permission, enabled, enable, setEnabled, onOpen, consider };
});
