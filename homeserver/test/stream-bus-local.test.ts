import { RoomsApi } from '@parley/sdk';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { StreamNote } from '../src/repositories/stream.js';
import { createTestRedis, type TestRedis } from './support/redis.js';
import { startTestServer, type TestServer } from './support/server.js';

// With Redis, a process hands the notes it committed to its own listeners at once and skips
// its own copy coming back by pub/sub (other processes still get them that way). Before, every
// local note waited for the Redis round trip and was parsed again: with the process's
// subscription gone, its own sends reached none of its sockets until something read the gap.
let redis: TestRedis;
let server: TestServer;
beforeAll(async () => {
  redis = await createTestRedis();
  server = await startTestServer({ redis: { url: redis.url, key_prefix: redis.prefix } });
});
afterAll(async () => {
  await server?.close();
  await redis?.cleanup();
});

it("a process's own notes reach its listeners without the pub/sub round trip, exactly once", async () => {
  const c = server.client();
  await c.register({ username: 'alice', password: 'alice password' });
  const rooms = new RoomsApi(c);
  const { room_id } = await rooms.create({ visibility: 'public', name: 'local' });
  const bus = server.services.bus;
  const seen: StreamNote[] = [];
  const off = bus.onNote((n) => {
    if (n.kind === 'event' && n.room_id === room_id) seen.push(n);
  });
  const bodyOf = (n: StreamNote) => (n.data.event as { content?: { body?: string } } | undefined)?.content?.body ?? null;
  const arrived = async (body: string) => {
    for (let i = 0; i < 300 && !seen.some((n) => bodyOf(n) === body); i++) await new Promise((r) => setTimeout(r, 10));
    return seen.filter((n) => bodyOf(n) === body).length;
  };
  // With the subscription working, the copy that comes back is not handed over a second time.
  await rooms.sendText(room_id, 'with pub/sub');
  expect(await arrived('with pub/sub')).toBe(1);
  await new Promise((r) => setTimeout(r, 300));
  expect(seen.filter((n) => bodyOf(n) === 'with pub/sub')).toHaveLength(1);
  // Without it, the process's own sends still reach its listeners.
  const subscriber = (bus as unknown as { subscriber: { unsubscribe(...c: string[]): Promise<unknown> } }).subscriber;
  await subscriber.unsubscribe(`${redis.prefix}stream`);
  await rooms.sendText(room_id, 'without pub/sub');
  expect(await arrived('without pub/sub')).toBe(1);
  off();
});
