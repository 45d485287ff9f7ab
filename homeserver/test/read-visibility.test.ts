import { canSee, type MembershipChange } from '@parley/federation/room';
import type { HistoryVisibility, Membership, SyncResponse } from '@parley/schemas';
import { type ParleyClient, RoomsApi } from '@parley/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { visibleRanges } from '../src/services/visible-ranges.js';
import { startTestServer, type TestServer } from './support/server.js';
import { openStream } from './support/stream-client.js';

interface Person {
  client: ParleyClient;
  rooms: RoomsApi;
  id: string;
  token: () => string;
}

/**
 * The H1 class swept through the other read paths: nothing a user may not read of a room's
 * history shows through search, unread counts or their pagination.
 */
describe('read paths respect history visibility', () => {
  let server: TestServer;
  let alice: Person;

  async function person(name: string): Promise<Person> {
    const client = server.client();
    await client.register({ username: name, password: `${name} password` });
    return { client, rooms: new RoomsApi(client), id: `@${name}:hs1.test`, token: () => client.session?.access_token as string };
  }

  beforeAll(async () => {
    server = await startTestServer();
    alice = await person('alice');
  });
  afterAll(() => server?.close());

  it('security: H1 sweep — search neither shows nor hints at hidden history (no `next` over invisible hits)', async () => {
    const bob = await person('bob');
    const { room_id: roomId } = await alice.rooms.create({ visibility: 'public', name: 'Quiet', history_visibility: 'joined' });
    for (let i = 0; i < 3; i++) await alice.rooms.sendText(roomId, `zebra secret ${i}`);
    await bob.rooms.join(roomId);
    await alice.rooms.sendText(roomId, 'zebra public');
    // Alice sees all four; bob exactly the one sent after he joined, and no page beyond it.
    expect((await alice.rooms.search('zebra', { room_id: roomId, limit: 10 })).count).toBe(4);
    for (const limit of [1, 2, 10]) {
      const page = await bob.rooms.search('zebra', { room_id: roomId, limit });
      expect(page.results.map((r) => r.event.content.body)).toEqual(['zebra public']);
      expect(page.next, `limit ${limit}`).toBeUndefined();
    }
    // A word only hidden messages hold: nothing, and no hint that something matched.
    const hidden = await bob.rooms.search('secret', { room_id: roomId, limit: 1 });
    expect(hidden).toEqual({ results: [], count: 0 });
  });

  it('search pages through visible hits only, and every page is full until the last', async () => {
    const carol = await person('carol');
    const { room_id: roomId } = await alice.rooms.create({ visibility: 'public', name: 'Pages', history_visibility: 'joined' });
    await carol.rooms.join(roomId);
    for (let i = 0; i < 3; i++) await alice.rooms.sendText(roomId, `walrus seen ${i}`);
    await carol.rooms.leave(roomId);
    for (let i = 0; i < 4; i++) await alice.rooms.sendText(roomId, `walrus away ${i}`);
    await carol.rooms.join(roomId);
    for (let i = 0; i < 3; i++) await alice.rooms.sendText(roomId, `walrus back ${i}`);
    const bodies: string[] = [];
    let next: string | undefined;
    for (let i = 0; i < 10; i++) {
      const page = await carol.rooms.search('walrus', { room_id: roomId, limit: 2, ...(next ? { next } : {}) });
      if (page.next) expect(page.results).toHaveLength(2);
      bodies.push(...page.results.map((r) => r.event.content.body as string));
      next = page.next;
      if (!next) break;
    }
    expect(bodies.sort()).toEqual(['walrus back 0', 'walrus back 1', 'walrus back 2', 'walrus seen 0', 'walrus seen 1', 'walrus seen 2']);
  });

  it('security: H1 sweep — unread counts do not count messages from before the join', async () => {
    const dave = await person('dave');
    const { room_id: roomId } = await alice.rooms.create({ visibility: 'public', name: 'Counted', history_visibility: 'joined' });
    for (let i = 0; i < 5; i++) await alice.rooms.sendText(roomId, `before dave ${i}`);
    await dave.rooms.join(roomId);
    const s = openStream(dave.client.baseUrl, dave.token());
    await s.ready;
    await alice.rooms.sendText(roomId, 'after dave');
    const frame = await s.waitFor((f) => f.kind === 'event' && f.data.event.content.body === 'after dave');
    expect(frame.kind === 'event' && frame.data.unread_count).toBe(1);
    s.close();
    const summary = (await dave.rooms.list()).find((r) => r.room_id === roomId);
    expect(summary?.unread_count).toBe(1);
    // The long-poll carries no counts, but must not carry the hidden messages either.
    const polled = await dave.client.request<SyncResponse>('GET', '/api/v1/sync?since=0&timeout=0');
    expect(JSON.stringify(polled.frames)).not.toContain('before dave');
  });

  it('security: H1 sweep — the room list previews no message from before the join', async () => {
    const erin = await person('erin');
    const { room_id: hidden } = await alice.rooms.create({ visibility: 'public', name: 'Preview', history_visibility: 'joined' });
    await alice.rooms.sendText(hidden, 'preview secret');
    const { room_id: shared } = await alice.rooms.create({ visibility: 'public', name: 'Open preview' });
    await alice.rooms.sendText(shared, 'preview for all');
    await erin.rooms.join(hidden);
    await erin.rooms.join(shared);
    const list = await erin.rooms.list();
    expect(list.find((r) => r.room_id === hidden)?.last_event ?? null).toBeNull();
    // Shared history is visible after joining, so its preview stays.
    expect(list.find((r) => r.room_id === shared)?.last_event?.content.body).toBe('preview for all');
    await alice.rooms.sendText(hidden, 'preview after');
    const again = await erin.rooms.list();
    expect(again.find((r) => r.room_id === hidden)?.last_event?.content.body).toBe('preview after');
  });

  it('visibleRanges agrees with canSee for every seq, visibility and membership history (seeded random logs)', () => {
    let seed = 42;
    const random = () => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const memberships: Membership[] = ['join', 'leave', 'invite', 'ban', 'knock'];
    const visibilities: HistoryVisibility[] = ['world_readable', 'shared', 'invited', 'joined'];
    for (let trial = 0; trial < 500; trial++) {
      const log: MembershipChange[] = [];
      let seq = 0;
      for (let i = Math.floor(random() * 6); i > 0; i--) {
        seq += 1 + Math.floor(random() * 4);
        log.push({ seq, membership: memberships[Math.floor(random() * memberships.length)] as Membership });
      }
      const r = visibleRanges(log);
      for (let at = 1; at <= seq + 3; at++) {
        for (const vis of visibilities) {
          const inRanges =
            vis === 'world_readable' ||
            (vis === 'shared' && at <= r.sharedUpTo) ||
            (vis === 'invited' && r.invited.some(([a, b]) => at >= a && at <= b)) ||
            (vis === 'joined' && r.joined.some(([a, b]) => at >= a && at <= b));
          expect(inRanges, `${JSON.stringify(log)} seq ${at} ${vis}`).toBe(canSee(log, at, vis));
        }
      }
    }
  });
});
