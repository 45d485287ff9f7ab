import { ParleyClient, RoomsApi, type StoredSession } from '@parley/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OutboxRepository, stateOf } from '../src/repositories/outbox.js';
import { type Federation, startFederation } from './support/federation.js';
import { until } from './support/net.js';
import { ManualClock } from './support/server.js';

/**
 * A participant that comes back after a day away is caught up at once, not at the host's
 * next try (after a day of failures, one an hour). Time is a manual clock: the test moves it
 * through the day of the outage, try by try on the host's own schedule, and then no more, so
 * nothing is "due" by the clock when hs2 returns and only its announcement can make the host
 * deliver.
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

    // A day away on the simulated clock: hs1 tries hs2 each time its backoff comes due (the
    // sweep, called here instead of waiting for its 5 s timer, starts the drain) and fails,
    // until a day has passed and it is down, trying once an hour.
    const outbox = new OutboxRepository(hs1.running.services.db);
    const delivery = hs1.running.federation?.delivery;
    if (!delivery) throw new Error('hs1 runs no federation');
    await until(async () => ((await outbox.destination('hs2.test'))?.failures ?? 0) >= 1);
    const wentDown = clock.now();
    let tries = 1;
    while (clock.now() - wentDown < 86_400_000) {
      expect(tries, 'a day of backoff takes a bounded number of tries').toBeLessThan(100);
      const before = stateOf(await outbox.destination('hs2.test'));
      if (before.kind === 'up') throw new Error('hs2 is up while stopped');
      clock.advance(Math.max(0, before.nextTryTs - clock.now()));
      await delivery.sweep();
      await until(async () => ((await outbox.destination('hs2.test'))?.failures ?? 0) > before.failures);
      tries++;
    }
    const state = stateOf(await outbox.destination('hs2.test'));
    expect(state).toMatchObject({ kind: 'down', sinceTs: wentDown });
    const wait = (state as { nextTryTs: number }).nextTryTs - clock.now();
    // The schedule's cap: an hour, with jitter down to half of it.
    expect(wait).toBeGreaterThanOrEqual(1_800_000);
    expect(wait).toBeLessThanOrEqual(3_600_000);
    // Nothing queued for hs2 expired in that day (the outbox keeps rows for a week).
    expect((await outbox.depth()).find((d) => d.destination === 'hs2.test')?.n).toBeGreaterThanOrEqual(5);

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
