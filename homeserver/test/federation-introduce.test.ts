import { RoomsApi } from '@parley/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from './support/server.js';

/**
 * When another server's user joins one of our rooms, we tell that server our members'
 * presence (edus.ts `introduce`, 3 s after the join). In a room of thousands that was one
 * presence lookup per member, run while the joining server was still checking the room's
 * snapshot (bench join-large); it is one query per thousand members.
 */
describe('federation: introducing our members to a server that joins', () => {
  let hs: TestServer;
  beforeAll(async () => {
    hs = await startTestServer({ server_name: 'hs9.test', federation: { static_servers: {} } });
  }, 60_000);
  afterAll(async () => {
    await hs?.close();
  });

  it('looks up the presence of a room’s members in one query, not one per member', async () => {
    const client = hs.client();
    await client.register({ username: 'alice', password: 'alice password' });
    const { room_id: roomId } = await new RoomsApi(client).create({ visibility: 'public', name: 'Many' });
    const db = hs.services.db;
    const members = Array.from({ length: 40 }, (_, i) => ({ room_id: roomId, user_id: `@m${i}:hs9.test`, membership: 'join', seq: 1 }));
    await db('memberships').insert([...members, { room_id: roomId, user_id: '@x:other.test', membership: 'join', seq: 1 }]);
    await db('presence').insert({ user_id: '@m7:hs9.test', presence: 'online', last_active_ts: Date.now() });
    const presenceReads: string[] = [];
    const onQuery = (q: { sql: string }) => {
      if (/from "presence"/.test(q.sql)) presenceReads.push(q.sql);
    };
    db.on('query', onQuery);
    try {
      expect(hs.services.roomLog.onJoins).toBeTypeOf('function');
      hs.services.roomLog.onJoins?.(roomId, ['@x:other.test']);
      // The introduction goes out 3 s after the join; the online member's presence is queued for other.test.
      const queued = async () => (await db('outbox').where({ destination: 'other.test' }).count<{ n: string }[]>('* as n'))[0]?.n ?? '0';
      const until = Date.now() + 10_000;
      while (Number(await queued()) === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
      expect(Number(await queued())).toBeGreaterThan(0);
    } finally {
      db.off('query', onQuery);
    }
    expect(presenceReads.length).toBe(1);
  });
});
