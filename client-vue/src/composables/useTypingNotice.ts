import { onBeforeUnmount, type Ref, watch } from 'vue';
import { useSessionStore } from '../stores/session.js';

const TIMEOUT_MS = 30_000;
// Renew before the server's timeout runs out, but not on every keystroke.
const RENEW_MS = 20_000;

/** Tells the room we are typing while the draft is non-empty, and that we stopped when it empties or is sent. */
export function useTypingNotice(roomId: Ref<string>, draft: Ref<string>) {
  const session = useSessionStore();
  let sentAt = 0;
  let typingIn: string | null = null;

  function put(room: string, typing: boolean): void {
    const body = typing ? { typing, timeout_ms: TIMEOUT_MS } : { typing };
    // A typing notice is a courtesy: failures (an older server, a blip) are not worth a word.
    void session
      .getClient()
      .request('PUT', `/api/v1/rooms/${encodeURIComponent(room)}/typing`, body)
      .catch(() => {});
  }

  function stop(): void {
    if (typingIn) put(typingIn, false);
    typingIn = null;
    sentAt = 0;
  }

  watch(draft, (text) => {
    if (text.trim() === '') return stop();
    if (typingIn !== roomId.value || Date.now() - sentAt > RENEW_MS) {
      if (typingIn && typingIn !== roomId.value) put(typingIn, false);
      typingIn = roomId.value;
      sentAt = Date.now();
      put(roomId.value, true);
    }
  });
  watch(roomId, stop);
  onBeforeUnmount(stop);
  return { stop };
}
