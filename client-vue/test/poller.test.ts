import { ParleyApiError } from '@parley/sdk';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createPoller } from '../src/live/poller.js';
import type { LiveSink } from '../src/live/types.js';

function sink(over: Partial<LiveSink> = {}): LiveSink & { calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    openRoom: () => '!r:hs1.test',
    refreshRooms: async () => {
      calls.push('rooms');
    },
    catchUp: async (roomId) => {
      calls.push(`catchUp ${roomId}`);
    },
    events: () => {},
    typing: () => {},
    receipt: () => {},
    sessionEnded: () => {
      calls.push('ended');
    },
    ...over,
  };
}

const offline = () => new ParleyApiError({ status: 0, code: 'PARLEY_NETWORK', message: 'down' });

describe('poller', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('polls the open room and, less often, the room list', async () => {
    const s = sink();
    const p = createPoller(s, { intervalMs: 1000, roomsEveryNth: 3 });
    await vi.advanceTimersByTimeAsync(0);
    expect(p.state.value).toBe('live');
    await vi.advanceTimersByTimeAsync(3000);
    expect(s.calls.filter((c) => c === 'rooms')).toHaveLength(2);
    expect(s.calls.filter((c) => c.startsWith('catchUp'))).toHaveLength(4);
    p.stop();
    expect(p.state.value).toBe('stopped');
  });

  it('reports reconnecting while the network fails, backs off, and recovers', async () => {
    let down = false;
    let attempts = 0;
    const s = sink({
      refreshRooms: async () => {
        attempts++;
        if (down) throw offline();
      },
    });
    const p = createPoller(s, { intervalMs: 1000, roomsEveryNth: 1, maxBackoffMs: 4000 });
    await vi.advanceTimersByTimeAsync(0);
    expect(p.state.value).toBe('live');
    down = true;
    await vi.advanceTimersByTimeAsync(1000);
    expect(p.state.value).toBe('reconnecting');
    const before = attempts;
    await vi.advanceTimersByTimeAsync(7000); // backoff 1s, 2s, 4s
    expect(attempts - before).toBe(3);
    down = false;
    await vi.advanceTimersByTimeAsync(4000);
    expect(p.state.value).toBe('live');
    p.stop();
  });

  it('stops and reports a dead session on 401', async () => {
    const s = sink({
      refreshRooms: async () => {
        throw new ParleyApiError({ status: 401, code: 'PARLEY_UNKNOWN_TOKEN', message: 'gone' });
      },
    });
    const p = createPoller(s);
    await vi.advanceTimersByTimeAsync(0);
    expect(p.state.value).toBe('stopped');
    expect(s.calls).toContain('ended');
  });

  it('keeps polling after a non-transient error without showing the banner', async () => {
    const s = sink({
      catchUp: async () => {
        throw new ParleyApiError({ status: 403, code: 'PARLEY_FORBIDDEN', message: 'kicked' });
      },
    });
    const p = createPoller(s, { intervalMs: 1000 });
    await vi.advanceTimersByTimeAsync(2500);
    expect(p.state.value).toBe('connecting');
    p.stop();
  });
});
