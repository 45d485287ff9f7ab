import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EventRow } from '../src/repositories/events.js';
import { startTestServer, type TestServer } from './support/server.js';

/**
 * A snapshot join of a large room writes thousands of rows at once: Postgres binds at most
 * 65,535 parameters per statement, so the repositories write in slices.
 */
describe('storing a large snapshot', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(() => server?.close());

  it('stores 12,000 state entries, memberships and events', async () => {
    const { db, roomRepo, eventRepo } = server.services;
    const roomId = '!big:hs9.test';
    const n = 12_000;
    const rows: EventRow[] = Array.from({ length: n }, (_, i) => {
      const user = `@u${i}:hs9.test`;
      const event = { room_id: roomId, type: 'room.member', state_key: user, sender: user, content: { membership: 'join' } };
      return {
        event_id: `$e${i}`,
        room_id: roomId,
        seq: i + 1,
        type: 'room.member',
        state_key: user,
        sender: user,
        origin_ts: 1,
        event: event as unknown as EventRow['event'],
        record: { room_id: roomId, seq: i + 1 } as unknown as EventRow['record'],
        visibility: 'shared',
        redacted_by: null,
        rel_type: null,
        rel_event_id: null,
        rel_key: null,
      };
    });
    await db.transaction(async (trx) => {
      await roomRepo.insert(
        {
          room_id: roomId,
          host: 'hs9.test',
          creator: '@u0:hs9.test',
          kind: 'room',
          parent_id: null,
          published: false,
          current_seq: n,
          head_hash: null,
          lamport: 1,
          created_ts: 1,
          history_from: n,
        },
        trx,
      );
      await eventRepo.insertMissing(rows, trx);
      await roomRepo.putSnapshot(
        roomId,
        rows.map((r) => ({
          type: r.type,
          state_key: r.state_key as string,
          event_id: r.event_id,
          seq: r.seq,
          membership: 'join' as const,
        })),
        trx,
      );
      // Entries already held are kept, not duplicated.
      await eventRepo.insertMissing(rows.slice(0, 10), trx);
    });
    const count = async (table: string) => Number((await db(table).where({ room_id: roomId }).count<{ n: string }[]>('* as n'))[0]?.n);
    expect(await count('events')).toBe(n);
    expect(await count('room_state')).toBe(n);
    expect(await count('memberships')).toBe(n);
    expect((await roomRepo.members(roomId, 'join')).length).toBe(n);
  });
});
