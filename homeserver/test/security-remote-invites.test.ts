import { isParleyApiError, RoomsApi } from '@parley/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RemoteInviteRepository } from '../src/repositories/room-extras.js';
import { type Federation, type FedServer, startFederation } from './support/federation.js';
import { startTestServer } from './support/server.js';

// Issue 10, L10: a room this server does not take part in (an invite is all it knows, and
// the host is down) let any local user delete another user's pending invite, and queue
// signed events to any server for days.
async function status(p: Promise<unknown>): Promise<number> {
  try {
    await p;
    return 200;
  } catch (err) {
    if (isParleyApiError(err)) return err.status;
    throw err;
  }
}

describe('security: writes to rooms this server is not in', () => {
  let fed: Federation;
  let hs1: FedServer;
  let hs2: FedServer;
  let alice: RoomsApi;
  let bob: RoomsApi;
  let mallory: RoomsApi;

  beforeAll(async () => {
    fed = await startFederation(['hs1.test', 'hs2.test'], {
      overrides: (name) => (name === 'hs2.test' ? { rate_limits: { enabled: true } } : {}),
    });
    hs1 = fed.byName('hs1.test');
    hs2 = fed.byName('hs2.test');
    alice = (await hs1.user('alice')).rooms;
    bob = (await hs2.user('bob')).rooms;
    mallory = (await hs2.user('mallory')).rooms;
  }, 60_000);
  afterAll(async () => {
    await fed?.close();
  });

  const outboxRows = () => hs2.running.services.db('outbox').count<{ n: string }[]>({ n: '*' });

  it('security: L10 another local user cannot delete a pending remote invite, nor queue events for its room', async () => {
    const { room_id: room } = await alice.create({ visibility: 'private', name: 'For bob', invite: ['@bob:hs2.test'] });
    await expect.poll(async () => (await bob.list()).some((r) => r.room_id === room && r.membership === 'invite')).toBe(true);
    await hs1.stop();
    try {
      const before = Number((await outboxRows())[0]?.n);
      // Kicking bob (a leave for him, signed by mallory) and banning him.
      expect(await status(mallory.kick(room, '@bob:hs2.test'))).toBe(404);
      expect(await status(mallory.ban(room, '@bob:hs2.test'))).toBe(404);
      expect(await status(mallory.leave(room))).toBe(404);
      expect((await bob.list()).some((r) => r.room_id === room && r.membership === 'invite')).toBe(true);
      expect(Number((await outboxRows())[0]?.n)).toBe(before);
      // Bob himself may still decline while the host is down (queued for it).
      expect(await status(bob.leave(room))).toBe(200);
      expect((await bob.list()).some((r) => r.room_id === room)).toBe(false);
    } finally {
      await hs1.start();
    }
  });

  it('security: L10 a user cannot queue signed events to a server that never invited them', async () => {
    const before = Number((await outboxRows())[0]?.n);
    for (const room of ['!nowhere:hs1.test', '!nowhere:unknown.example']) {
      expect(await status(mallory.leave(room))).toBe(404);
      expect(await status(mallory.invite(room, '@bob:hs2.test'))).toBe(404);
    }
    expect(Number((await outboxRows())[0]?.n)).toBe(before);
  });

  it('security: L10 declines queued for a host that is down are paced per user', async () => {
    // hs1 came back on a new client port in the first test: alice signs in there again.
    const client = hs1.client();
    await client.login({ username: 'alice', password: 'alice password' });
    alice = new RoomsApi(client);
    // A user with a full bucket of 20; 30 invites to decline.
    const bea = (await hs2.user('bea')).rooms;
    const rooms: string[] = [];
    for (let i = 0; i < 30; i++) {
      rooms.push((await alice.create({ visibility: 'private', name: `Invite ${i}`, invite: ['@bea:hs2.test'] })).room_id);
    }
    await expect.poll(async () => (await bea.list()).filter((r) => rooms.includes(r.room_id) && r.membership === 'invite').length).toBe(30);
    await hs1.stop();
    try {
      const statuses: number[] = [];
      for (const room of rooms) statuses.push(await status(bea.leave(room)));
      expect(statuses.slice(0, 20)).toEqual(new Array(20).fill(200));
      // The bucket refills at 10 a minute: ten more declines would need a minute to pass
      // between these requests to all go through.
      expect(statuses.slice(20)).toContain(429);
      expect(statuses.every((s) => s === 200 || s === 429)).toBe(true);
    } finally {
      await hs1.start();
    }
  });
});

describe('security: pending invites from other servers', () => {
  it('security: L10 one server cannot pile up pending invites for a user: only its newest are kept', async () => {
    const server = await startTestServer();
    try {
      const invites = new RemoteInviteRepository(server.services.db);
      const put = (room: string, ts: number) =>
        invites.put({ room_id: room, user_id: '@bob:hs1.test', inviter: '@x:other', event: {}, created_ts: ts });
      await put('!real:good.example', 1);
      for (let i = 0; i < 120; i++) await put(`!spam${i}:evil.example`, 10 + i);
      const kept = (await invites.forUser('@bob:hs1.test')).map((r) => r.room_id);
      // The flood displaced only its own older invites, never another server's.
      expect(kept).toContain('!real:good.example');
      expect(kept.filter((r) => r.endsWith(':evil.example'))).toHaveLength(RemoteInviteRepository.MAX_PER_SERVER);
      expect(kept).toContain('!spam119:evil.example');
      expect(kept).not.toContain('!spam0:evil.example');
    } finally {
      await server.close();
    }
  });
});
