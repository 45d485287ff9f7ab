import { onBeforeUnmount, type Ref, watch } from 'vue';
import { useSessionStore } from '../stores/session.js';

const TIMEOUT_MS = 30_000;
// One "typing" when typing starts, renewed before the server's timeout runs out — never per
// keystroke or per message (the server rate-limits typing notices per user).
const RENEW_MS = 20_000;
// One "stopped" once the draft has been empty, or untouched, this long. Sending a message
// empties the draft, but someone sending a burst of lines is still typing: no stop between them.
const IDLE_MS = 4_000;

/** Tells the room we are typing while the draft changes, and that we stopped once it rests. */
export function useTypingNotice(roomId: Ref<string>, draft: Ref<string>) {
  const session = useSessionStore();
  let sentAt = 0;
  let typingIn: string | null = null;
  let idle: ReturnType<typeof setTimeout> | undefined;

  function put(room: string, typing: boolean): void {
    const body = typing ? { typing, timeout_ms: TIMEOUT_MS } : { typing };
    // A typing notice is a courtesy: failures (an older server, a blip) are not worth a word.
    void session
      .getClient()
      .request('PUT', `/api/v1/rooms/${encodeURIComponent(room)}/typing`, body)
      .catch(() => {});
  }

  /** Says "stopped" now (leaving the room, clearing the draft by hand). */
  function stop(): void {
    clearTimeout(idle);
    if (typingIn) put(typingIn, false);
    typingIn = null;
    sentAt = 0;
  }

  function restIn(): void {
    clearTimeout(idle);
    if (typingIn) idle = setTimeout(stop, IDLE_MS);
  }

  watch(draft, (text) => {
    if (text.trim() === '') return restIn();
    if (typingIn !== roomId.value || Date.now() - sentAt > RENEW_MS) {
      if (typingIn && typingIn !== roomId.value) put(typingIn, false);
      typingIn = roomId.value;
      sentAt = Date.now();
      put(roomId.value, true);
    }
    restIn();
  });
  watch(roomId, stop);
  onBeforeUnmount(stop);
  return { stop, sent: restIn };
}
