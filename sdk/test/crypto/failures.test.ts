import { describe, expect, it } from 'vitest';
import { CryptoDevice, fromB64u, MemoryCryptoStore, toB64u } from '../../src/crypto/index.js';
import { claim, commitAndFanOut, introduce, makeUser, TestHost, text } from './support.js';

const ROOM = '!enc:a.test';

/** Alice and Bob in one group at epoch 1, plus Carol who knows them but is not in it. */
async function pair(isRoomMember?: (roomId: string, userId: string) => boolean) {
  const alice = await makeUser('@alice:a.test', 1, { isRoomMember });
  const bob = await makeUser('@bob:b.test', 1, { isRoomMember });
  const carol = await makeUser('@carol:c.test', 1, { isRoomMember });
  await introduce([alice, bob, carol]);
  const a = alice.devices[0]!;
  const b = bob.devices[0]!;
  const c = carol.devices[0]!;
  const host = new TestHost();
  await a.createGroup(ROOM);
  await commitAndFanOut(host, a, ROOM, await a.prepareCommit(ROOM, { add: [await claim(b)] }), [a, b]);
  return { a, b, c, host };
}

function flipByte(b64: string, fromEnd: number): string {
  const bytes = fromB64u(b64);
  bytes[bytes.length - fromEnd]! ^= 0x01;
  return toB64u(bytes);
}

describe('typed decryption failures', () => {
  it('a tampered ciphertext is corrupt, and the untampered one still decrypts', async () => {
    const { a, b } = await pair();
    const sent = await a.encrypt(ROOM, text('secret'));
    const tampered = await b.decrypt(ROOM, { ...sent, ciphertext: flipByte(sent.ciphertext, 5) });
    expect(tampered).toMatchObject({ ok: false, reason: 'corrupt' });
    expect((await b.decrypt(ROOM, { ...sent, ciphertext: 'not*base64' })).ok).toBe(false);
    expect(await b.decrypt(ROOM, { ...sent, epoch: sent.epoch + 1 })).toMatchObject({ ok: false, reason: 'corrupt' });
    expect((await b.decrypt(ROOM, sent)).ok).toBe(true);
  });

  it('a replayed application message is refused (its key is gone)', async () => {
    const { a, b } = await pair();
    const sent = await a.encrypt(ROOM, text('once'));
    expect((await b.decrypt(ROOM, sent)).ok).toBe(true);
    expect(await b.decrypt(ROOM, sent)).toMatchObject({ ok: false, reason: 'corrupt' });
  });

  it('a message for an epoch not reached yet is unknown_epoch, and decrypts once the commit is applied', async () => {
    const { a, b, host } = await pair();
    const update = await a.prepareCommit(ROOM, { update: true });
    expect(host.submit(update.content).ok).toBe(true);
    await a.confirmCommit(ROOM);
    const sent = await a.encrypt(ROOM, text('from epoch 2'));
    expect(await b.decrypt(ROOM, sent)).toMatchObject({ ok: false, reason: 'unknown_epoch' });
    expect((await b.processCommit(ROOM, update.content)).ok).toBe(true);
    expect((await b.decrypt(ROOM, sent)).ok).toBe(true);
  });

  it('a device without the group reports missing_welcome; a Welcome for a used-up package is no_key_package', async () => {
    const { a, c, host } = await pair();
    const sent = await a.encrypt(ROOM, text('hi'));
    expect(await c.decrypt(ROOM, sent)).toMatchObject({ ok: false, reason: 'missing_welcome' });
    // Carol's package was claimed, but her device lost the private half (e.g. restored from an old copy).
    const kp = await claim(c);
    const fresh = await CryptoDevice.open({ store: new MemoryCryptoStore(), userId: c.userId, deviceId: c.deviceId });
    const add = await a.prepareCommit(ROOM, { add: [kp] });
    expect(host.submit(add.content).ok).toBe(true);
    await a.confirmCommit(ROOM);
    expect(await fresh.joinFromWelcome(ROOM, add.welcome!)).toMatchObject({ ok: false, reason: 'no_key_package' });
    expect((await c.joinFromWelcome(ROOM, add.welcome!)).ok).toBe(true);
  });

  it('a message from a user who is not a member in the room state is not_member', async () => {
    const members = new Set(['@alice:a.test', '@bob:b.test']);
    const { a, b } = await pair((_room, user) => members.has(user));
    const sent = await b.encrypt(ROOM, text('still here?'));
    members.delete('@bob:b.test'); // Bob left in the room state; his leaf is not removed yet
    expect(await a.decrypt(ROOM, sent)).toMatchObject({ ok: false, reason: 'not_member' });
  });

  it('a commit from a non-member is not applied', async () => {
    const { b, c } = await pair();
    // Carol makes her own group under the same ID and commits in it, at Bob's epoch.
    await c.createGroup(ROOM);
    const forged = await c.prepareCommit(ROOM, { update: true });
    await c.confirmCommit(ROOM);
    const forged2 = await c.prepareCommit(ROOM, { update: true });
    const before = await b.epoch(ROOM);
    const r = await b.processCommit(ROOM, forged2.content);
    expect(r).toMatchObject({ ok: false, reason: 'not_member' });
    expect(await b.epoch(ROOM)).toBe(before);
    expect(forged.content.epoch).toBe(0);
  });

  it('a replayed or stale commit is refused and changes nothing', async () => {
    const { a, b, host } = await pair();
    const first = host.commits[0]!;
    expect(await b.processCommit(ROOM, first)).toMatchObject({ ok: false, reason: 'stale_epoch' });
    const update = await a.prepareCommit(ROOM, { update: true });
    expect(host.submit(update.content).ok).toBe(true);
    await a.confirmCommit(ROOM);
    expect((await b.processCommit(ROOM, update.content)).ok).toBe(true);
    expect(await b.processCommit(ROOM, update.content)).toMatchObject({ ok: false, reason: 'stale_epoch' });
    expect(await a.processCommit(ROOM, update.content)).toMatchObject({ ok: false, reason: 'stale_epoch' });
    // Both still talk.
    expect((await a.decrypt(ROOM, await b.encrypt(ROOM, text('ok')))).ok).toBe(true);
  });
});
