import type { ParleyStream } from '@parley/sdk';
import { ref } from 'vue';
import type { ConnectionState, LiveSink, LiveSource } from './types.js';

/**
 * Live updates from the server's stream (WebSocket, falling back to long-poll): frames go
 * to the sink as they arrive; after every `ready` (first contact, or a reconnect that may
 * have skipped frames when `reset`) the room list and the open room are re-read, so a
 * dropped connection never loses messages.
 */
export function createStreamSource(stream: ParleyStream, sink: LiveSink): LiveSource {
  const state = ref<ConnectionState>('connecting');
  let readyOnce = false;

  async function resync(): Promise<void> {
    try {
      await sink.refreshRooms();
      const room = sink.openRoom();
      if (room) await sink.catchUp(room);
    } catch {
      // The next ready (or the person's next action) tries again.
    }
  }

  // Before the per-kind listeners (the feed emits 'frame' first), so the crypto sees events in order.
  stream.on('frame', (frame) => sink.frame?.(frame));
  stream.on('event', (frame) => sink.events(frame.data.event.room_id, [frame.data.event], frame.data.unread_count));
  stream.on('typing', (frame) => sink.typing(frame.data.room_id, frame.data.user_ids));
  stream.on('receipt', (frame) => {
    if (!frame.data.private) sink.receipt(frame.data.room_id, frame.data.user_id, frame.data.event_id);
  });
  stream.on('presence', (frame) => sink.presence?.(frame.data.user_id, frame.data.presence));
  stream.on('profile', (frame) => sink.profile?.(frame.data.user_id, frame.data.displayname, frame.data.avatar_url));
  stream.on('ready', (r) => {
    state.value = 'live';
    // The first ready of a fresh stream follows the stores' own initial loads.
    if (readyOnce || r.reset) void resync();
    readyOnce = true;
  });
  stream.on('reconnecting', () => {
    state.value = 'reconnecting';
  });
  stream.on('disconnected', (e) => {
    if (e.willRetry) state.value = 'reconnecting';
  });
  stream.on('revoked', () => {
    state.value = 'stopped';
    sink.sessionEnded();
  });
  const onOnline = () => {
    if (state.value !== 'live') void resync();
  };
  window.addEventListener('online', onOnline);
  stream.start();

  return {
    state,
    kind: 'stream',
    poke: () => {
      const room = sink.openRoom();
      if (room && state.value === 'live') void sink.catchUp(room).catch(() => {});
    },
    stop: () => {
      window.removeEventListener('online', onOnline);
      stream.close();
      state.value = 'stopped';
    },
  };
}
