import { ref } from 'vue';
import { isSessionGone, isTransient } from '../lib/errors.js';
import type { LiveSink, LiveSource } from './types.js';

export interface PollerOptions {
  /** Between polls of the open room while the page is visible. */
  intervalMs?: number;
  /** The room list changes less often. */
  roomsEveryNth?: number;
  hiddenIntervalMs?: number;
  maxBackoffMs?: number;
}

/**
 * Live updates without the stream: polls the open room's newest events and, less often,
 * the room list. A failed poll (network, 5xx) flips the state to `reconnecting` and backs
 * off; the first success flips it back to `live`.
 */
export function createPoller(sink: LiveSink, opts: PollerOptions = {}): LiveSource {
  const interval = opts.intervalMs ?? 2000;
  const roomsEvery = opts.roomsEveryNth ?? 3;
  const hiddenInterval = opts.hiddenIntervalMs ?? 15_000;
  const maxBackoff = opts.maxBackoffMs ?? 15_000;
  const state = ref<'connecting' | 'live' | 'reconnecting' | 'stopped'>('connecting');
  let timer: ReturnType<typeof setTimeout> | undefined;
  let tick = 0;
  let failures = 0;
  let running = false;
  let stopped = false;

  async function poll(): Promise<void> {
    if (stopped || running) return;
    running = true;
    clearTimeout(timer);
    try {
      if (tick % roomsEvery === 0 || state.value !== 'live') await sink.refreshRooms();
      const room = sink.openRoom();
      if (room) await sink.catchUp(room);
      tick++;
      failures = 0;
      state.value = 'live';
    } catch (err) {
      if (isSessionGone(err)) {
        stop();
        sink.sessionEnded();
        return;
      }
      // Anything else that is not transient (403 after a kick, say) is the stores' business,
      // not the connection's: keep polling at the normal pace.
      if (isTransient(err)) {
        failures++;
        state.value = 'reconnecting';
      }
    } finally {
      running = false;
    }
    schedule();
  }

  function schedule(): void {
    if (stopped) return;
    const hidden = typeof document !== 'undefined' && document.visibilityState === 'hidden';
    const base = hidden ? hiddenInterval : interval;
    const delay = failures > 0 ? Math.min(maxBackoff, interval * 2 ** (failures - 1)) : base;
    timer = setTimeout(poll, delay);
  }

  const onOnline = () => void poll();
  const onVisible = () => {
    if (document.visibilityState === 'visible') void poll();
  };
  window.addEventListener('online', onOnline);
  document.addEventListener('visibilitychange', onVisible);

  function stop(): void {
    stopped = true;
    clearTimeout(timer);
    state.value = 'stopped';
    window.removeEventListener('online', onOnline);
    document.removeEventListener('visibilitychange', onVisible);
  }

  void poll();
  return {
    state,
    kind: 'poll',
    poke: () => void poll(),
    stop,
  };
}
