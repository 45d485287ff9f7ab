import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectReads, openDevice, type SessionDevice } from './support/e2e-session.js';
import { type Federation, type FedServer, startFederation } from './support/federation.js';

// Issue 12 through the sdk's E2eSession (what every client runs): real homeservers, each
// device its own session and store, fed by its own stream.

describe('E2eSession: two users on one server', () => {
  let fed: Federation;
  let hs1: FedServer;
  let alice: SessionDevice;
  let bob: SessionDevice;

  beforeAll(async () => {
    fed = await startFederation(['hs1.test']);
    hs1 = fed.servers[0] as FedServer;
    alice = await openDevice(hs1, 'alice');
    bob = await openDevice(hs1, 'bob');
  }, 120_000);
  afterAll(async () => {
    for (const d of [alice, bob]) {
      d?.poller?.close();
      await d?.session.close();
    }
    await fed?.close();
  });

  it('open, enableEncryption, send and decrypt both ways', async () => {
    expect(alice.session.needsRecovery).toBe(false);
    const { room_id: roomId } = await alice.rooms.create({ visibility: 'private', invite: [bob.userId] });
    await bob.rooms.join(roomId);
    await alice.session.enableEncryption(roomId);
    expect(alice.session.isEncrypted(roomId)).toBe(true);
    const { eventId } = await alice.session.send(roomId, { type: 'room.message', body: 'hello bob' });
    await expectReads(bob, roomId, eventId, 'hello bob');
    const back = await bob.session.send(roomId, { type: 'room.message', body: 'hello alice' });
    await expectReads(alice, roomId, back.eventId, 'hello alice');
    expect(alice.errors).toEqual([]);
    expect(bob.errors).toEqual([]);
  }, 120_000);
});
