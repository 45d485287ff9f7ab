import type { ClientEvent, EncryptedContent, MlsCommitContent, SyncResponse } from '@parley/schemas';
import { E2eApi, type ParleyClient, RoomsApi } from '@parley/sdk';
import { BACKUP_ALGORITHM, CryptoDevice, fromB64u, MemoryCryptoStore, newRecoveryKey, toB64u } from '@parley/sdk/crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Federation, type FedServer, startFederation } from './support/federation.js';
import { until } from './support/net.js';

// Issue 12, the sdk's side against two real homeservers: every step goes through the sdk's
// E2eApi (key packages, signed device lists, claims over federation, commits the host
// sequences, Welcomes to-device, encrypted messages, key backup), and the crypto is the
// sdk's CryptoDevice. Alice has two devices on hs1, Bob one on hs2; the room lives on hs1.

interface Dev {
  client: ParleyClient;
  rooms: RoomsApi;
  e2e: E2eApi;
  crypto: CryptoDevice;
  userId: string;
  deviceId: string;
}

const td = new TextDecoder();
const te = new TextEncoder();

async function device(client: ParleyClient): Promise<Dev> {
  const userId = client.userId as string;
  const deviceId = client.deviceId as string;
  // backupHistory: the key backup then lets a new device read what this one already read.
  const crypto = await CryptoDevice.open({ store: new MemoryCryptoStore(), userId, deviceId, backupHistory: true });
  return { client, rooms: new RoomsApi(client), e2e: new E2eApi(client), crypto, userId, deviceId };
}

async function uploadPackages(d: Dev): Promise<void> {
  const upload = await d.crypto.keyPackages.refill(await d.e2e.keyPackageCount(), 5, 5);
  if (upload !== null) await d.e2e.uploadKeyPackages(upload);
}

/** The room's commits in timeline order, applied; the ones already applied answer stale_epoch. */
async function catchUp(d: Dev, roomId: string): Promise<void> {
  const events = (await d.rooms.messages(roomId, { limit: 100, dir: 'f' })).chunk.filter((e) => e.type === 'room.mls.commit');
  for (const e of events) {
    const r = await d.crypto.processCommit(roomId, e.content as unknown as MlsCommitContent);
    if (!r.ok && r.reason !== 'stale_epoch') throw new Error(`${d.userId}/${d.deviceId}: ${r.reason} ${r.detail}`);
  }
}

async function welcomeFor(d: Dev, since: number | undefined): Promise<string> {
  let welcome: string | undefined;
  await until(async () => {
    const sync = await d.client.request<SyncResponse>('GET', `/api/v1/sync?timeout=0${since === undefined ? '' : `&since=${since}`}`);
    const f = sync.frames.find((x) => x.kind === 'to_device' && x.data.type === 'mls.welcome');
    welcome = f?.kind === 'to_device' ? (f.data.content.welcome as string) : undefined;
    return welcome !== undefined;
  }, 30_000);
  return welcome as string;
}

async function syncPosition(d: Dev): Promise<number> {
  return (await d.client.request<SyncResponse>('GET', '/api/v1/sync?timeout=0')).next;
}

async function encryptedEvents(d: Dev, roomId: string, count: number): Promise<ClientEvent[]> {
  let events: ClientEvent[] = [];
  await until(async () => {
    events = (await d.rooms.messages(roomId, { limit: 100, dir: 'f' })).chunk.filter((e) => e.type === 'room.encrypted');
    return events.length >= count;
  }, 30_000);
  return events;
}

describe('sdk crypto through real homeservers (issue 12)', () => {
  let fed: Federation;
  let hs1: FedServer;
  let laptop: Dev;
  let phone: Dev;
  let bob: Dev;
  let roomId: string;

  beforeAll(async () => {
    fed = await startFederation(['hs1.test', 'hs2.test']);
    const [a, b] = fed.servers as [FedServer, FedServer];
    hs1 = a;
    const alice = await a.user('alice');
    laptop = await device(alice.client);
    const phoneClient = a.client();
    await phoneClient.login({ username: 'alice', password: 'alice password', device_name: 'phone' });
    phone = await device(phoneClient);
    bob = await device((await b.user('bob')).client);
  }, 120_000);
  afterAll(async () => {
    await fed?.close();
  });

  it('device lists, claims across servers, a host-sequenced commit and Welcomes build the group', async () => {
    const key = await laptop.crypto.createUserSigningKey();
    await phone.crypto.acceptCertification(await laptop.crypto.certifyDevice(phone.deviceId, phone.crypto.signatureKey), key.publicKey);
    await laptop.e2e.putDeviceList(
      await laptop.crypto.signDeviceList([laptop.crypto.ownSignedDevice(), phone.crypto.ownSignedDevice()], 1),
    );
    await bob.crypto.createUserSigningKey();
    await bob.e2e.putDeviceList(await bob.crypto.signDeviceList([bob.crypto.ownSignedDevice()], 1));
    for (const d of [laptop, phone, bob]) await uploadPackages(d);
    for (const d of [laptop, phone, bob]) {
      const answer = await d.e2e.queryDeviceLists([laptop.userId, bob.userId]);
      for (const u of [laptop.userId, bob.userId]) {
        const check = await d.crypto.trustDeviceList(answer.device_lists[u]?.device_list as never, u);
        expect(check.ok, `${d.deviceId} trusts ${u}`).toBe(true);
      }
    }

    ({ room_id: roomId } = await laptop.rooms.create({ visibility: 'private', invite: [bob.userId], encrypted: true }));
    await bob.rooms.join(roomId);
    await laptop.crypto.createGroup(roomId);
    const claimed = await laptop.e2e.claimKeyPackages({ [bob.userId]: [], [laptop.userId]: [phone.deviceId] });
    const packages = [claimed.key_packages[bob.userId]?.[bob.deviceId], claimed.key_packages[laptop.userId]?.[phone.deviceId]].map(
      (c) => c?.key_package as string,
    );
    const since = await Promise.all([phone, bob].map(syncPosition));
    const prepared = await laptop.crypto.prepareCommit(roomId, { add: packages });
    const { group_info: _tooBigForLargeRooms, ...content } = prepared.content;
    expect(await laptop.e2e.sendCommit(roomId, content)).toMatchObject({ status: 'sequenced' });
    await laptop.crypto.confirmCommit(roomId);
    await laptop.e2e.sendWelcome(prepared.welcomeFor, { room_id: roomId, epoch: 1, welcome: prepared.welcome });
    for (const [i, d] of [phone, bob].entries()) {
      expect(await d.crypto.joinFromWelcome(roomId, await welcomeFor(d, since[i]))).toMatchObject({ ok: true, epoch: 1 });
    }
  }, 120_000);

  it('two devices on two servers commit in the same epoch: the host decides, the loser catches up and retries, no fork', async () => {
    const [fromPhone, fromBob] = await Promise.all([
      phone.crypto.prepareCommit(roomId, { update: true }),
      bob.crypto.prepareCommit(roomId, { update: true }),
    ]);
    const strip = (c: MlsCommitContent) => ({ epoch: c.epoch, commit: c.commit });
    const answers = await Promise.all([
      phone.e2e.sendCommit(roomId, strip(fromPhone.content)),
      bob.e2e.sendCommit(roomId, strip(fromBob.content)),
    ]);
    expect(answers.map((a) => a.status).sort()).toEqual(['sequenced', 'stale']);
    const [winner, loser] = answers[0]?.status === 'sequenced' ? [phone, bob] : [bob, phone];
    const lost = answers.find((a) => a.status === 'stale');
    expect(lost).toMatchObject({ currentEpoch: 2 });
    await winner.crypto.confirmCommit(roomId);
    // The loser sees the winner in the timeline (its own prepared commit is dropped), then retries.
    await until(async () => {
      await catchUp(loser, roomId);
      return (await loser.crypto.epoch(roomId)) === 2;
    }, 30_000);
    await loser.crypto.discardCommit(roomId);
    const retry = await loser.crypto.prepareCommit(roomId, { update: true });
    expect(retry.content.epoch).toBe(2);
    expect(await loser.e2e.sendCommit(roomId, strip(retry.content))).toMatchObject({ status: 'sequenced' });
    await loser.crypto.confirmCommit(roomId);
    for (const d of [laptop, phone, bob]) {
      await until(async () => {
        await catchUp(d, roomId);
        return (await d.crypto.epoch(roomId)) === 3;
      }, 30_000);
    }

    const said = new Map<string, string>();
    for (const d of [laptop, phone, bob]) {
      const body = `hello from ${d.userId}/${d.deviceId}`;
      const content = await d.crypto.encrypt(roomId, te.encode(body));
      said.set(content.ciphertext, body);
      await d.e2e.sendEncrypted(roomId, content);
    }
    for (const d of [laptop, phone, bob]) {
      for (const e of await encryptedEvents(d, roomId, 3)) {
        if (e.sender === d.userId && (said.get((e.content as EncryptedContent).ciphertext) ?? '').endsWith(d.deviceId)) continue;
        const r = await d.crypto.decrypt(roomId, e.content as unknown as EncryptedContent);
        expect(r.ok && td.decode(r.plaintext), d.deviceId).toBe(said.get((e.content as EncryptedContent).ciphertext));
      }
    }
  }, 120_000);

  it('a new device of Alice restores the key backup from her server and reads the conversation', async () => {
    const recoveryKey = newRecoveryKey();
    const sealed = await laptop.crypto.exportBackup(recoveryKey);
    expect(await laptop.e2e.putBackup(toB64u(sealed), BACKUP_ALGORITHM, null)).toMatchObject({ version: 1 });
    await expect(phone.e2e.putBackup(toB64u(sealed), BACKUP_ALGORITHM, null)).rejects.toMatchObject({ status: 409 });

    const tabletClient = hs1.client();
    await tabletClient.login({ username: 'alice', password: 'alice password', device_name: 'tablet' });
    const tablet = await device(tabletClient);
    const backup = await tablet.e2e.backup();
    expect(backup?.algorithm).toBe(BACKUP_ALGORITHM);
    await expect(tablet.crypto.restoreBackup(newRecoveryKey(), fromB64u(backup?.ciphertext as string))).rejects.toMatchObject({
      code: 'wrong_recovery_key',
    });
    expect(await tablet.crypto.restoreBackup(recoveryKey, fromB64u(backup?.ciphertext as string))).toEqual([roomId]);
    const events = await encryptedEvents(tablet, roomId, 3);
    const fromBob = events.find((e) => e.sender === bob.userId);
    const r = await tablet.crypto.decrypt(roomId, fromBob?.content as unknown as EncryptedContent);
    expect(r.ok && td.decode(r.plaintext)).toBe(`hello from ${bob.userId}/${bob.deviceId}`);
  }, 120_000);
});
