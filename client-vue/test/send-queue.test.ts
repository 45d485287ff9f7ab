import type { ClientEvent } from '@parley/schemas';
import { ParleyApiError, type RoomsApi } from '@parley/sdk';
import { createPinia, setActivePinia } from 'pinia';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { useSessionStore } from '../src/stores/session.js';
import { useTimelineStore } from '../src/stores/timeline.js';

const ROOM = '!r:hs1.test';
const offline = () => new ParleyApiError({ status: 0, code: 'PARLEY_NETWORK', message: 'down' });

/** A RoomsApi stand-in that records what reached "the server" and fails the first attempts it is told to. */
function fakeApi(failFirst: number) {
  const arrived: string[] = [];
  const attempts: string[] = [];
  let failures = failFirst;
  let seq = 0;
  const api = {
    async send(_room: string, _type: string, content: Record<string, unknown>, txnId: string) {
      attempts.push(String(content.body));
      // Each request takes a moment, so concurrent sends would overlap here.
      await Promise.resolve();
      if (failures > 0) {
        failures--;
        throw offline();
      }
      arrived.push(String(content.body));
      seq++;
      return { event_id: `$${txnId}`, seq };
    },
    async event(_room: string, id: string): Promise<ClientEvent> {
      throw new ParleyApiError({ status: 404, code: 'PARLEY_NOT_FOUND', message: `no ${id}` });
    },
  };
  return { api: api as unknown as RoomsApi, arrived, attempts };
}

describe('the send line of a room', () => {
  beforeEach(() => {
    setActivePinia(createPinia());
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('sends one at a time in the order written, retrying a failed one before the next goes out', async () => {
    const fake = fakeApi(2);
    useSessionStore().api = fake.api;
    const timeline = useTimelineStore();
    const sends = ['one', 'two', 'three'].map((body) => timeline.sendText(ROOM, body));
    // "one" fails twice (network): nothing behind it may overtake while it waits to retry.
    await vi.advanceTimersByTimeAsync(0);
    expect(fake.attempts).toEqual(['one']);
    await vi.advanceTimersByTimeAsync(500);
    expect(fake.attempts).toEqual(['one', 'one']);
    await vi.advanceTimersByTimeAsync(1000);
    await Promise.all(sends);
    expect(fake.arrived).toEqual(['one', 'two', 'three']);
    expect(fake.attempts).toEqual(['one', 'one', 'one', 'two', 'three']);
    expect(timeline.get(ROOM).pending.map((p) => p.state)).toEqual(['sent', 'sent', 'sent']);
  });

  it('a send refused for good (4xx) is marked failed and the line moves on', async () => {
    const fake = fakeApi(0);
    type Send = (room: string, type: string, content: Record<string, unknown>, txnId: string) => Promise<{ event_id: string; seq: number }>;
    const inner = (fake.api as unknown as { send: Send }).send;
    const refusing = {
      ...fake.api,
      send: async (room: string, type: string, content: Record<string, unknown>, txnId: string) => {
        if (content.body === 'bad') throw new ParleyApiError({ status: 403, code: 'PARLEY_FORBIDDEN', message: 'no' });
        return inner(room, type, content, txnId);
      },
    };
    useSessionStore().api = refusing as unknown as RoomsApi;
    const timeline = useTimelineStore();
    await Promise.all(['bad', 'good'].map((body) => timeline.sendText(ROOM, body)));
    expect(fake.arrived).toEqual(['good']);
    expect(timeline.get(ROOM).pending.map((p) => p.state)).toEqual(['failed', 'sent']);
  });
});
