import { BackupError, formatRecoveryKey, newRecoveryKey } from '@parley/sdk/crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  closeAll,
  comeBack,
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
import { freePort, until } from './support/net.js';

// Issue 12 through E2eSession, the parts about being away: key backup restored on a new
// device, a device offline while it was added, a participant server down during commits.
// Three real homeservers; the room lives on hs1, bob is on hs2, carol and dave on hs3.

describe('E2eSession: recovery, offline devices and servers', () => {
  let fed: Federation;
  let hs1: FedServer;
  let hs3: FedServer;
  let alice: Person;
  let bob: Person;
  let carol: Person;
  const extra: SessionDevice[] = [];
  let roomId: string;
  let history: { eventId: string; body: string };
  const all = () => [...alice.devices, ...bob.devices, ...carol.devices];

  beforeAll(async () => {
    // hs3 keeps its client port across a restart, as a real server's address stays: its devices' clients stay valid.
    const hs3Port = await freePort();
    fed = await startFederation(['hs1.test', 'hs2.test', 'hs3.test'], {
      overrides: (name) => (name === 'hs3.test' ? { http: { host: '127.0.0.1', port: hs3Port, shutdown_grace_ms: 2000 } } : {}),
    });
    [hs1, , hs3] = fed.servers as [FedServer, FedServer, FedServer];
    alice = await person(hs1, 'alice');
    bob = await person(fed.servers[1] as FedServer, 'bob');
    carol = await person(hs3, 'carol');
    const a1 = alice.devices[0] as SessionDevice;
    roomId = await encryptedRoom(a1, [bob, carol], all());
    const body = 'history worth keeping';
    history = { eventId: (await (bob.devices[0] as SessionDevice).session.send(roomId, { type: 'room.message', body })).eventId, body };
    await expectReads(a1, roomId, history.eventId, body);
  }, 240_000);
  afterAll(async () => {
    await closeAll([...(alice?.devices ?? []), ...(bob?.devices ?? []), ...(carol?.devices ?? []), ...extra]);
    await fed?.close();
  });

  it('a new device restores the key backup with the recovery key and reads the history it covers; a wrong key is refused', async () => {
    const a1 = alice.devices[0] as SessionDevice;
    expect(await a1.session.hasRecovery()).toBe(true);
    expect(await a1.session.backupNow()).toBe(true);
    const tablet = await openDevice(hs1, 'alice', { login: true, name: 'alice-tablet' });
    extra.push(tablet);
    expect(tablet.session.needsRecovery).toBe(true);
    await expect(tablet.session.send(roomId, { body: 'too early' })).rejects.toThrow(/recovery key/);
    const wrong = tablet.session.restore(formatRecoveryKey(newRecoveryKey()));
    await expect(wrong).rejects.toBeInstanceOf(BackupError);
    await expect(wrong).rejects.toMatchObject({ code: 'wrong_recovery_key' });
    expect(tablet.session.needsRecovery).toBe(true);
    await tablet.session.restore(alice.recoveryKey);
    expect(tablet.session.needsRecovery).toBe(false);
    // Sent before this device existed: readable only through the backup.
    await expectReads(tablet, roomId, history.eventId, history.body);
    // And it is a device like the others from now on.
    alice.devices.push(tablet);
    extra.pop();
    await groupIs(all(), roomId, all());
    const { eventId } = await a1.session.send(roomId, { type: 'room.message', body: 'hello tablet' });
    await expectReads(tablet, roomId, eventId, 'hello tablet');
  }, 180_000);

  it('recovery set up after an encrypted room exists still covers what is sent from then on (the group re-keys)', async () => {
    const e1 = await openDevice(hs1, 'erin', { name: 'erin1' });
    extra.push(e1);
    const erin: Person = { userId: e1.userId, devices: [e1], recoveryKey: '' };
    const notes = await encryptedRoom(e1, [], erin.devices);
    erin.recoveryKey = await e1.session.setupRecovery();
    const { eventId } = await e1.session.send(notes, { type: 'room.message', body: 'written after recovery' });
    expect(await e1.session.backupNow()).toBe(true);
    const e2 = await openDevice(hs1, 'erin', { login: true, name: 'erin2' });
    extra.push(e2);
    await e2.session.restore(erin.recoveryKey);
    await expectReads(e2, notes, eventId, 'written after recovery', e1);
  }, 120_000);

  it('an offline device gets its Welcome and everything after it when it comes back', async () => {
    const a1 = alice.devices[0] as SessionDevice;
    const dave = await openDevice(hs3, 'dave');
    extra.push(dave);
    await goOffline(dave);
    await a1.rooms.invite(roomId, dave.userId);
    await until(async () => {
      try {
        await dave.rooms.join(roomId);
        return true;
      } catch {
        return false;
      }
    }, 30_000);
    // The members add dave's device while its session is closed.
    await groupIs(all(), roomId, [...all(), dave]);
    const first = await a1.session.send(roomId, { type: 'room.message', body: 'while you were away' });
    const second = await (bob.devices[1] as SessionDevice).session.send(roomId, { type: 'room.message', body: 'and this too' });
    expect(await dave.session.device.hasGroup(roomId)).toBe(false);
    await comeBack(dave);
    await expectReads(dave, roomId, first.eventId, 'while you were away');
    await expectReads(dave, roomId, second.eventId, 'and this too');
    const reply = await dave.session.send(roomId, { type: 'room.message', body: 'back' });
    await Promise.all(all().map((d) => expectReads(d, roomId, reply.eventId, 'back')));
    expect(dave.errors).toEqual([]);
  }, 180_000);

  it('a participant server stopped during commits comes back, catches up and decrypts', async () => {
    const onHs3 = [...carol.devices, ...extra.filter((d) => d.userId.endsWith(':hs3.test'))];
    await hs3.stop();
    try {
      await (bob.devices[0] as SessionDevice).session.updateKeys(roomId);
      await (alice.devices[1] as SessionDevice).session.updateKeys(roomId);
      const during = await (alice.devices[0] as SessionDevice).session.send(roomId, { type: 'room.message', body: 'while hs3 was down' });
      await hs3.start();
      for (const d of onHs3) await expectReads(d, roomId, during.eventId, 'while hs3 was down');
    } finally {
      if (!hs3.isRunning()) await hs3.start();
    }
    const after = await (bob.devices[1] as SessionDevice).session.send(roomId, { type: 'room.message', body: 'after hs3 came back' });
    await Promise.all(onHs3.map((d) => expectReads(d, roomId, after.eventId, 'after hs3 came back')));
    const epochs = new Set(await Promise.all([...all(), ...onHs3].map((d) => d.session.device.epoch(roomId))));
    expect(epochs.size).toBe(1);
  }, 240_000);
  it('a new member nobody adds (every member device offline) joins by external commit; the members read it when back', async () => {
    const a1 = alice.devices[0] as SessionDevice;
    const { room_id: quiet } = await a1.rooms.create({ visibility: 'private', name: 'quiet' });
    await a1.session.enableEncryption(quiet);
    await groupIs(alice.devices, quiet, alice.devices);
    const erin = await openDevice(fed.servers[1] as FedServer, 'erin');
    extra.push(erin);
    await a1.rooms.invite(quiet, erin.userId);
    for (const d of alice.devices) await goOffline(d);
    await until(async () => {
      try {
        await erin.rooms.join(quiet);
        return true;
      } catch {
        return false;
      }
    }, 30_000);
    // No Welcome comes: after welcomeWaitMs erin's session joins from the latest commit's GroupInfo.
    await until(async () => (await erin.session.device.members(quiet)).some((m) => m.userId === erin.userId), 60_000);
    expect(erin.logs.some((l) => /membership commit/.test(l))).toBe(false);
    const { eventId } = await erin.session.send(quiet, { type: 'room.message', body: 'anyone here?' });
    for (const d of alice.devices) await comeBack(d);
    await Promise.all(alice.devices.map((d) => expectReads(d, quiet, eventId, 'anyone here?')));
    await groupIs([...alice.devices, erin], quiet, [...alice.devices, erin]);
    const reply = await a1.session.send(quiet, { type: 'room.message', body: 'yes' });
    await expectReads(erin, quiet, reply.eventId, 'yes');
  }, 180_000);
  it("without a recovery key, a new device asks the user's other device, which approves it; it then reads the room", async () => {
    const hs2 = fed.servers[1] as FedServer;
    const f1 = await openDevice(hs2, 'frank', { name: 'frank1' });
    extra.push(f1);
    const f2 = await openDevice(hs2, 'frank', { login: true, name: 'frank2' });
    extra.push(f2);
    expect(f2.session.needsRecovery).toBe(true);
    expect(await f2.session.hasRecovery()).toBe(false);
    const asked: string[] = [];
    f1.session.on('approval', (e) => asked.push(e.deviceId));
    await f2.session.requestApproval();
    await until(() => asked.includes(f2.deviceId), 30_000);
    expect(f1.session.approvalRequests()).toEqual([f2.deviceId]);
    await expect(f1.session.approveDevice('NOSUCHDEVICE')).rejects.toThrow(/no approval request/);
    await f1.session.approveDevice(f2.deviceId);
    await until(() => !f2.session.needsRecovery, 30_000);
    expect(f2.session.device.certified).toBe(true);
    const { room_id: own } = await f1.rooms.create({ visibility: 'private', name: 'frank alone' });
    await f1.session.enableEncryption(own);
    await groupIs([f1, f2], own, [f1, f2]);
    const { eventId } = await f1.session.send(own, { type: 'room.message', body: 'note to self' });
    await expectReads(f2, own, eventId, 'note to self');
  }, 120_000);
});
