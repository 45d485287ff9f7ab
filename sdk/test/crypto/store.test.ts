import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CryptoDevice } from '../../src/crypto/index.js';
import { FileCryptoStore } from '../../src/crypto/node.js';
import { claim, introduce, makeUser, TestHost, text, untext } from './support.js';

const ROOM = '!enc:a.test';
const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});
async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'parley-crypto-'));
  dirs.push(d);
  return d;
}

describe('FileCryptoStore: a restart loses nothing', () => {
  it('keeps values across instances, lists by prefix, deletes', async () => {
    const dir = await tempDir();
    const s1 = new FileCryptoStore(dir);
    await s1.put('group/!a:b', Uint8Array.of(1, 2, 3));
    await s1.put('kp/xyz', Uint8Array.of(4));
    const s2 = new FileCryptoStore(dir);
    expect(await s2.get('group/!a:b')).toEqual(Uint8Array.of(1, 2, 3));
    expect(await s2.list('group/')).toEqual(['group/!a:b']);
    await s2.delete('kp/xyz');
    expect(await s1.get('kp/xyz')).toBeUndefined();
    expect(await new FileCryptoStore(join(dir, 'nothing')).list('')).toEqual([]);
  });

  it('a device reopened from its directory keeps its identity, groups, pending commit and key packages', async () => {
    const aliceDir = await tempDir();
    const bobDir = await tempDir();
    const alice = await makeUser('@alice:a.test', 1, { stores: [new FileCryptoStore(aliceDir)] });
    const bob = await makeUser('@bob:b.test', 1, { stores: [new FileCryptoStore(bobDir)] });
    await introduce([alice, bob]);
    const host = new TestHost();
    const a = alice.devices[0]!;
    await a.createGroup(ROOM);
    const bobPackage = await claim(bob.devices[0]!);
    const add = await a.prepareCommit(ROOM, { add: [bobPackage] });
    expect(host.submit(add.content).ok).toBe(true);

    // Both processes restart: Alice between sending her commit and seeing it sequenced,
    // Bob before his Welcome arrived.
    const a2 = await CryptoDevice.open({ store: new FileCryptoStore(aliceDir), userId: a.userId, deviceId: a.deviceId });
    const b2 = await CryptoDevice.open({ store: new FileCryptoStore(bobDir), userId: bob.userId, deviceId: 'DEV0' });
    expect(a2.signatureKey).toEqual(a.signatureKey);
    expect(a2.userKey(bob.userId)).toEqual(bob.devices[0]!.userSigningKey);
    expect(await a2.processCommit(ROOM, add.content)).toMatchObject({ ok: true, own: true, epoch: 1 });
    expect((await b2.joinFromWelcome(ROOM, add.welcome!)).ok).toBe(true);

    const hello = await a2.encrypt(ROOM, text('one'));
    const again = await b2.decrypt(ROOM, hello);
    expect(again.ok && untext(again.plaintext)).toBe('one');

    // And again, mid-conversation: ratchets stay where they were.
    const a3 = await CryptoDevice.open({ store: new FileCryptoStore(aliceDir), userId: a.userId, deviceId: a.deviceId });
    const b3 = await CryptoDevice.open({ store: new FileCryptoStore(bobDir), userId: bob.userId, deviceId: 'DEV0' });
    const two = await a3.encrypt(ROOM, text('two'));
    expect(two.ciphertext).not.toBe(hello.ciphertext);
    const r = await b3.decrypt(ROOM, two);
    expect(r.ok && untext(r.plaintext)).toBe('two');
    expect(await b3.decrypt(ROOM, hello)).toMatchObject({ ok: false, reason: 'corrupt' }); // consumed before the restart
    const back = await a3.decrypt(ROOM, await b3.encrypt(ROOM, text('three')));
    expect(back.ok && untext(back.plaintext)).toBe('three');
  });

  it('refuses to open a store that belongs to another device', async () => {
    const dir = await tempDir();
    await CryptoDevice.open({ store: new FileCryptoStore(dir), userId: '@a:x', deviceId: 'D1' });
    await expect(CryptoDevice.open({ store: new FileCryptoStore(dir), userId: '@a:x', deviceId: 'D2' })).rejects.toThrow(/belongs to/);
  });
});
