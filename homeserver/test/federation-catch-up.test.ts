import { onFailure } from '@parley/federation/delivery';
import { ParleyClient, RoomsApi, type StoredSession } from '@parley/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OutboxRepository, stateOf } from '../src/repositories/outbox.js';
import { type Federation, startFederation } from './support/federation.js';
import { until } from './support/net.js';
import { ManualClock } from './support/server.js';

/**
 * A participant that comes back after a day away is caught up at once, not at the host's
 * next try (after a day of failures, one an hour). Time is a manual clock that does not move
 * during the test: nothing is ever "due" by the clock, so only the returning server's
 * announcement can make the host deliver.
 */
describe('federation: catch-up after an outage', () => {
  let fed: Federation;
  const clock = new ManualClock(Date.parse('2026-12-01T00:00:00Z'));
  let alice: RoomsApi;
  let bobSession: StoredSession;
  let roomId: string;

  beforeAll(async () => {
    // Presence off: a returning server with nothing of its own to send (no presence update
    // going out) is the case where only the announcement can wake the host.
    fed = await startFederation(['hs1.test', 'hs2.test'], { clock, overrides: () => ({ presence: { enabled: false } }) });
    alice = (await fed.byName('hs1.test').user('alice')).rooms;
    const bob = await fed.byName('hs2.test').user('bob');
    ({ room_id: roomId } = await alice.create({ visibility: 'public', name: 'Away' }));
    await bob.rooms.join(roomId);
    bobSession = bob.client.session as StoredSession;
    await alice.sendText(roomId, 'before the outage');
    await until(async () => (await bob.rooms.messages(roomId, { limit: 10 })).chunk.some((e) => e.content.body === 'before the outage'));
  });
  afterAll(async () => {
    await fed?.close();
  });

  it('a server back after a day gets what it missed without waiting out the backoff', async () => {
    const hs1 = fed.byName('hs1.test');
    const hs2 = fed.byName('hs2.test');
    await hs2.stop();
    for (let i = 0; i < 5; i++) await alice.sendText(roomId, `while away ${i}`);

    // hs1 has been failing to reach hs2 for a day: next try an hour from now.
    const outbox = new OutboxRepository(hs1.running.services.db);
    await until(async () => ((await outbox.destination('hs2.test'))?.failures ?? 0) >= 1);
    let state = stateOf(await outbox.destination('hs2.test'));
    for (let i = 0; i < 30; i++) state = onFailure(state, clock.now(), () => 1);
    await outbox.saveState('hs2.test', state, {});
    expect(state).toMatchObject({ kind: 'down' });
    expect((state as { nextTryTs: number }).nextTryTs - clock.now()).toBe(3_600_000);

    await hs2.start();
    // Bob's existing session (a new login would make a device-list change, whose delivery to
    // hs1 would wake it as well).
    const bobRooms = new RoomsApi(new ParleyClient({ baseUrl: hs2.url, session: bobSession }));
    await until(async () => {
      const bodies = (await bobRooms.messages(roomId, { limit: 20 })).chunk.map((e) => e.content.body);
      return Array.from({ length: 5 }, (_, i) => `while away ${i}`).every((b) => bodies.includes(b));
    }, 20_000);
    expect((await outbox.destination('hs2.test'))?.state).toBe('up');
  });
});
