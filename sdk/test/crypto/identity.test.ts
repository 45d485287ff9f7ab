import { describe, expect, it } from 'vitest';
import { CryptoDevice, CryptoFailureError, MemoryCryptoStore, toB64u } from '../../src/crypto/index.js';
import { claim, introduce, makeUser } from './support.js';

const ROOM = '!enc:a.test';

describe('signed device lists', () => {
  it('accepts a list the user key signed and pins that key', async () => {
    const bob = await makeUser('@bob:b.test', 2);
    const alice = await makeUser('@alice:a.test', 1);
    const check = await alice.devices[0]!.trustDeviceList(bob.list, bob.userId);
    expect(check.ok).toBe(true);
    if (check.ok) {
      expect(check.list.devices.map((d) => d.deviceId)).toEqual(['DEV0', 'DEV1']);
      expect(check.list.refused).toEqual([]);
    }
    expect(alice.devices[0]!.userKey(bob.userId)).toEqual(bob.devices[0]!.userSigningKey);
  });

  it('refuses a device a homeserver slipped into the list without the user key', async () => {
    const bob = await makeUser('@bob:b.test', 1);
    const alice = await makeUser('@alice:a.test', 1);
    const rogue = await CryptoDevice.open({ store: new MemoryCryptoStore(), userId: bob.userId, deviceId: 'ROGUE' });
    const slipped = {
      device_id: 'ROGUE',
      signature_key: toB64u(rogue.signatureKey),
      credential_signature: bob.devices[0]!.ownSignedDevice().credential_signature,
    };
    // The server re-signing is impossible; appending breaks the list signature.
    const appended = { ...bob.list, devices: [...bob.list.devices, slipped] };
    expect(await alice.devices[0]!.trustDeviceList(appended, bob.userId)).toMatchObject({
      ok: false,
      reason: 'device list: bad signature',
    });
    // Even inside a list the user key signed, an entry whose credential it did not sign is refused.
    const signedButForged = await bob.devices[0]!.signDeviceList([...bob.list.devices, slipped], 2);
    const check = await alice.devices[0]!.trustDeviceList(signedButForged, bob.userId);
    expect(check.ok).toBe(true);
    if (check.ok) {
      expect(check.list.devices.map((d) => d.deviceId)).toEqual(['DEV0']);
      expect(check.list.refused).toEqual([{ deviceId: 'ROGUE', reason: 'credential not signed by the user signing key' }]);
    }
  });

  it('refuses a list signed by another key than the pinned one (key changed)', async () => {
    const bob = await makeUser('@bob:b.test', 1);
    const alice = await makeUser('@alice:a.test', 1);
    expect((await alice.devices[0]!.trustDeviceList(bob.list, bob.userId)).ok).toBe(true);
    const impostor = await makeUser('@bob:b.test', 1); // a server inventing a new key for Bob
    const check = await alice.devices[0]!.trustDeviceList(impostor.list, bob.userId);
    expect(check.ok).toBe(false);
    if (!check.ok) expect(check.reason).toMatch(/key changed/);
    expect(await alice.devices[0]!.trustDeviceList(bob.list, '@mallory:b.test')).toMatchObject({ ok: false });
  });

  it('will not add, and will not join next to, a device whose credential no trusted key signed', async () => {
    const alice = await makeUser('@alice:a.test', 1);
    const bob = await makeUser('@bob:b.test', 1);
    await introduce([alice, bob]);
    const a = alice.devices[0]!;
    await a.createGroup(ROOM);
    // A device that claims to be Bob's but is certified by a key nobody pinned for Bob.
    const fake = await makeUser('@bob:b.test', 1);
    const err = await a.prepareCommit(ROOM, { add: [await claim(fake.devices[0]!)] }).catch((e) => e);
    expect(err).toBeInstanceOf(CryptoFailureError);
    expect((err as CryptoFailureError).reason).toBe('not_member');
    expect(await a.epoch(ROOM)).toBe(0);
  });
});
