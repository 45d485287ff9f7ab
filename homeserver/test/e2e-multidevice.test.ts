import type { ClientEvent, EncryptedContent } from '@parley/schemas';
import { CryptoDevice, MemoryCryptoStore } from '@parley/sdk/crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  addDevice,
  closeAll,
  comeBack,
  decryptOnce,
  encryptedRoom,
  expectReads,
  goOffline,
  groupIs,
  openDevice,
  type Person,
  person,
  type SessionDevice,
} from './support/e2e-session.js';
import { type Federation, type FedServer, startFederation } from './support/federation.js';
import { until } from './support/net.js';

// Issue 12 through the sdk's E2eSession (what every client runs): three real homeservers,
// users with two devices each, every device its own session and store fed by its own stream.
// The room lives on hs1; bob is on hs2, carol on hs3.

async function everyoneReads(readers: SessionDevice[], roomId: string, eventId: string, body: string): Promise<void> {
  await Promise.all(readers.map((d) => expectReads(d, roomId, eventId, body)));
}

describe('E2eSession: three servers, two devices a user', () => {
  let fed: Federation;
  let hs1: FedServer;
  let hs3: FedServer;
  let alice: Person;
  let bob: Person;
  let carol: Person;
  let carol3: SessionDevice | undefined;
  let roomId: string;
  const all = () => [...alice.devices, ...bob.devices, ...carol.devices];

  beforeAll(async () => {
    fed = await startFederation(['hs1.test', 'hs2.test', 'hs3.test']);
    [hs1, , hs3] = fed.servers as [FedServer, FedServer, FedServer];
    alice = await person(hs1, 'alice');
    bob = await person(fed.servers[1] as FedServer, 'bob');
    carol = await person(hs3, 'carol');
  }, 180_000);
  afterAll(async () => {
    await closeAll([...(alice?.devices ?? []), ...(bob?.devices ?? []), ...(carol?.devices ?? []), carol3]);
    await fed?.close();
  });

  it('every device decrypts every message sent after it joined', async () => {
    roomId = await encryptedRoom(alice.devices[0] as SessionDevice, [bob, carol], all());
    for (const d of all()) {
      const body = `hello from ${d.name}`;
      const { eventId } = await d.session.send(roomId, { type: 'room.message', body });
      await everyoneReads(
        all().filter((x) => x !== d),
        roomId,
        eventId,
        body,
      );
    }
    for (const d of all()) expect(d.errors, d.name).toEqual([]);
  }, 240_000);

  it('two devices commit in the same epoch at once: the host decides, the loser retries, nobody forks', async () => {
    const [b2, c1] = [bob.devices[1] as SessionDevice, carol.devices[0] as SessionDevice];
    const before = await b2.session.device.epoch(roomId);
    await Promise.all([b2.session.updateKeys(roomId), c1.session.updateKeys(roomId)]);
    // Both made their commit for the same slot; the host took one, the other was told stale and retried.
    const lost = [b2, c1].flatMap((d) => d.logs.filter((l) => /key update .* stale$/.test(l)));
    expect(lost.length).toBeGreaterThanOrEqual(1);
    const target = (before as number) + 2;
    await until(async () => {
      for (const d of all()) if ((await d.session.device.epoch(roomId)) !== target) return false;
      return true;
    }, 60_000);
    const { eventId } = await (alice.devices[1] as SessionDevice).session.send(roomId, { type: 'room.message', body: 'after the race' });
    await everyoneReads(all().slice(0, 1).concat(all().slice(2)), roomId, eventId, 'after the race');
  }, 180_000);

  it("a member's new device is added by the others and reads from then on", async () => {
    carol3 = await addDevice(hs3, 'carol', carol.recoveryKey, 'carol3');
    carol.devices.push(carol3);
    await groupIs(all(), roomId, all());
    const { eventId } = await (bob.devices[0] as SessionDevice).session.send(roomId, { type: 'room.message', body: 'welcome carol3' });
    await everyoneReads(
      all().filter((d) => d !== bob.devices[0]),
      roomId,
      eventId,
      'welcome carol3',
    );
  }, 180_000);

  it('a non-member cannot get plaintext into a device: a forged message and Welcome are refused', async () => {
    const eve = await openDevice(fed.servers[1] as FedServer, 'eve');
    try {
      // Eve makes her own group under the room's ID and encrypts to it; a rogue server hands it to Bob.
      const forger = await CryptoDevice.open({ store: new MemoryCryptoStore(), userId: eve.userId, deviceId: eve.deviceId });
      await forger.createUserSigningKey();
      await forger.createGroup(roomId);
      const content = await forger.encrypt(roomId, new TextEncoder().encode(JSON.stringify({ body: 'forged' })));
      const forged: ClientEvent = {
        event_id: '$forged-by-eve',
        room_id: roomId,
        type: 'room.encrypted',
        sender: eve.userId,
        origin_ts: Date.now(),
        content: content as unknown as Record<string, unknown>,
      };
      const b1 = bob.devices[0] as SessionDevice;
      await b1.session.handleFrame({ position: 0, kind: 'event', data: { event: forged } });
      const r = await b1.session.decrypt(forged);
      expect(r.ok).toBe(false);
      if (!r.ok) expect(['not_member', 'corrupt', 'unknown_epoch']).toContain(r.reason);
      // Same ciphertext claimed by a member: still not plaintext.
      const r2 = await b1.session.decrypt({ ...forged, event_id: '$forged-2', sender: alice.userId });
      expect(r2.ok).toBe(false);
      // A Welcome to a device from a non-member of the room is ignored.
      const epoch = await b1.session.device.epoch(roomId);
      const slot = (await b1.session.device.slot(roomId)) as number;
      // Eve's commit, handed to Bob's session as if sequenced for a past slot and for a future one: nothing moves.
      const { content: commit } = await forger.prepareCommit(roomId, { update: true });
      for (const at of [0, slot + 5]) {
        const event: ClientEvent = {
          ...forged,
          event_id: `$forged-commit-${at}`,
          type: 'room.mls.commit',
          content: { ...commit, epoch: at },
        };
        await b1.session.handleFrame({ position: 0, kind: 'event', data: { event } });
      }
      expect(await b1.session.device.slot(roomId)).toBe(slot);
      await eve.session.e2e.sendWelcome([{ userId: b1.userId, deviceId: b1.deviceId }], {
        room_id: roomId,
        epoch: 0,
        welcome: 'AAAA',
      });
      await eve.session.e2e.sendEncrypted(roomId, content as EncryptedContent).then(
        () => expect.fail('a non-member sent into the room'),
        (err) => expect(err.status).toBe(403),
      );
      const { eventId } = await (alice.devices[0] as SessionDevice).session.send(roomId, { type: 'room.message', body: 'still fine' });
      await expectReads(b1, roomId, eventId, 'still fine');
      expect(await b1.session.device.epoch(roomId)).toBe(epoch);
    } finally {
      await closeAll([eve]);
    }
  }, 120_000);

  it("a kicked user's devices decrypt nothing sent after the kick", async () => {
    const a1 = alice.devices[0] as SessionDevice;
    await a1.rooms.kick(roomId, carol.userId, 'bye');
    const { eventId } = await a1.session.send(roomId, { type: 'room.message', body: 'after the kick' });
    const stay = [...alice.devices, ...bob.devices];
    await groupIs(stay, roomId, stay);
    await everyoneReads(stay.slice(1), roomId, eventId, 'after the kick');
    for (const c of carol.devices) {
      const r = await decryptOnce(c, roomId, eventId, a1);
      expect(r.ok, c.name).toBe(false);
      if (!r.ok) expect(['not_member', 'unknown_epoch']).toContain(r.reason);
      await expect(c.session.send(roomId, { type: 'room.message', body: 'still here?' })).rejects.toThrow();
    }
    // A later message too, after more commits.
    await (bob.devices[0] as SessionDevice).session.updateKeys(roomId);
    const later = await (bob.devices[1] as SessionDevice).session.send(roomId, { type: 'room.message', body: 'later' });
    await expectReads(a1, roomId, later.eventId, 'later');
    for (const c of carol.devices) expect((await decryptOnce(c, roomId, later.eventId, a1)).ok, c.name).toBe(false);
  }, 180_000);
  it('trust per user: safety numbers agree, verified marks persist, a changed key is loud until accepted', async () => {
    const [a1, b1] = [alice.devices[0] as SessionDevice, bob.devices[0] as SessionDevice];
    expect(a1.session.userTrust(bob.userId)).toBe('unverified');
    const [fromAlice, fromBob] = [await a1.session.safety(bob.userId), await b1.session.safety(alice.userId)];
    expect(fromAlice).toEqual(fromBob);
    expect(fromAlice.emoji).toHaveLength(7);
    await a1.session.markVerified(bob.userId);
    expect(a1.session.userTrust(bob.userId)).toBe('verified');
    const devices = await a1.session.devices(bob.userId);
    expect(devices.map((d) => d.deviceId).sort()).toEqual(bob.devices.map((d) => d.deviceId).sort());
    expect(devices.every((d) => d.verified && !d.current)).toBe(true);
    const { eventId } = await b1.session.send(roomId, { type: 'room.message', body: 'verified me' });
    await expectReads(a1, roomId, eventId, 'verified me');
    expect(await decryptOnce(a1, roomId, eventId, a1)).toMatchObject({ ok: true, verified: true, sender: { userId: bob.userId } });

    // The mark is in the store: a reopened session still knows it.
    await goOffline(a1);
    await comeBack(a1);
    expect(a1.session.userTrust(bob.userId)).toBe('verified');

    // Carol's list re-signed by another key (her server, or someone with her password): refused, and said loudly.
    await closeAll(carol.devices);
    await a1.session.markVerified(carol.userId);
    const events: string[] = [];
    const off = a1.session.on('trust', (e) => events.push(`${e.userId} ${e.trust}`));
    const c1 = carol.devices[0] as SessionDevice;
    const rogue = await CryptoDevice.open({ store: new MemoryCryptoStore(), userId: carol.userId, deviceId: c1.deviceId });
    await rogue.createUserSigningKey();
    const current = await c1.session.e2e.deviceList(carol.userId);
    await c1.session.e2e.putDeviceList(await rogue.signDeviceList([rogue.ownSignedDevice()], (current.device_list?.version ?? 0) + 1));
    await a1.session.devices(carol.userId);
    expect(a1.session.userTrust(carol.userId)).toBe('key_changed');
    expect(events).toEqual([`${carol.userId} key_changed`]);
    await expect(a1.session.markVerified(carol.userId)).rejects.toThrow(/key changed/);
    await a1.session.acceptKeyChange(carol.userId);
    expect(a1.session.userTrust(carol.userId)).toBe('unverified');
    expect(events).toEqual([`${carol.userId} key_changed`, `${carol.userId} unverified`]);
    off();
  }, 120_000);
});
