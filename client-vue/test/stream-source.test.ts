import type { ParleyStream } from '@parley/sdk';
import { describe, expect, it, vi } from 'vitest';
import { createStreamSource } from '../src/live/stream.js';
import type { LiveSink } from '../src/live/types.js';

/** A stand-in for ParleyStream: the source only subscribes, starts and closes. */
function fakeStream() {
  const listeners = new Map<string, Array<(payload: unknown) => void>>();
  const stream = {
    on(type: string, fn: (payload: unknown) => void) {
      listeners.set(type, [...(listeners.get(type) ?? []), fn]);
      return () => {};
    },
    start() {
      return stream;
    },
    close() {},
  };
  const emit = (type: string, payload: unknown) => {
    for (const fn of listeners.get(type) ?? []) fn(payload);
  };
  return { stream: stream as unknown as ParleyStream, emit };
}

function sink(): LiveSink & { calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    openRoom: () => '!open:hs1.test',
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
  };
}

describe('stream source', () => {
  it('a reset (position older than the server keeps) re-reads the room list and the open room', async () => {
    const { stream, emit } = fakeStream();
    const s = sink();
    const source = createStreamSource(stream, s);
    // Resuming a persisted position the server no longer holds: ready comes with reset.
    emit('ready', { position: 500, reset: true, transport: 'websocket' });
    await vi.waitFor(() => expect(s.calls).toEqual(['rooms', 'catchUp !open:hs1.test']));
    expect(source.state.value).toBe('live');
    source.stop();
  });
});
