import { RoomsApi } from '@parley/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock, startTestServer, type TestServer } from './support/server.js';

/**
 * The typing limit fits what the web client sends (one "typing" when typing starts, renewed
 * every 20 s, one "stopped" after 4 s at rest), and one person's devices each have their own
 * budget, so a second tab or phone is not answered 429 because the first one typed.
 */
describe('typing notices and their rate limit', () => {
  let server: TestServer;
  const clock = new ManualClock();
  let roomIds: string[];
  const tokens: string[] = [];

  beforeAll(async () => {
    server = await startTestServer({ rate_limits: { enabled: true } }, clock);
    const first = server.client();
    await first.register({ username: 'alice', password: 'alice password' });
    const second = server.client();
    await second.login({ username: 'alice', password: 'alice password' });
    tokens.push(first.session?.access_token as string, second.session?.access_token as string);
    const rooms = new RoomsApi(first);
    roomIds = [];
    for (const name of ['a', 'b', 'c']) roomIds.push((await rooms.create({ name, visibility: 'private' })).room_id);
  });
  afterAll(async () => {
    await server?.close();
  });

  const put = (token: string, roomId: string, typing: boolean) =>
    fetch(`${server.url}/api/v1/rooms/${encodeURIComponent(roomId)}/typing`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify(typing ? { typing, timeout_ms: 30_000 } : { typing }),
    }).then((r) => r.status);

  it("the web client's pattern for ten busy minutes, hopping between three rooms, is never refused", async () => {
    const statuses: number[] = [];
    for (let minute = 0; minute < 10; minute++) {
      // Each room in turn: type (with a renewal) and rest, then move on and come back.
      for (const roomId of roomIds) {
        statuses.push(await put(tokens[0] as string, roomId, true));
        clock.advance(20_000);
        statuses.push(await put(tokens[0] as string, roomId, true), await put(tokens[0] as string, roomId, false));
      }
    }
    expect(statuses.filter((s) => s !== 200)).toEqual([]);
  });

  it('a burst from one device is limited; another device of the same person still gets through', async () => {
    clock.advance(60_000);
    const statuses: number[] = [];
    for (let i = 0; i < 25; i++) statuses.push(await put(tokens[0] as string, roomIds[0] as string, i % 2 === 0));
    expect(statuses).toContain(429);
    expect(await put(tokens[1] as string, roomIds[0] as string, true)).toBe(200);
  });
});
