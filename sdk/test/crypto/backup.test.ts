import { describe, expect, it } from 'vitest';
import {
  BackupError,
  CryptoDevice,
  formatRecoveryKey,
  MemoryCryptoStore,
  newRecoveryKey,
  openBackup,
  parseRecoveryKey,
  sealBackup,
} from '../../src/crypto/index.js';
import { claim, commitAndFanOut, introduce, makeUser, TestHost, text, untext } from './support.js';

const ROOM = '!enc:a.test';

describe('key backup', () => {
  it('a new device restores with the recovery key and reads the history the backup covers', async () => {
    const alice = await makeUser('@alice:a.test', 1, { backupHistory: true });
    const bob = await makeUser('@bob:b.test', 1);
    await introduce([alice, bob]);
    const [a, b] = [alice.devices[0]!, bob.devices[0]!];
    const host = new TestHost();
    await a.createGroup(ROOM);
    await commitAndFanOut(host, a, ROOM, await a.prepareCommit(ROOM, { add: [await claim(b)] }), [a, b]);
    const early = await b.encrypt(ROOM, text('before the update'));
    expect((await a.decrypt(ROOM, early)).ok).toBe(true); // read (and its key deleted) on Alice's old device
    await commitAndFanOut(host, b, ROOM, await b.prepareCommit(ROOM, { update: true }), [a, b]);
    const later = await b.encrypt(ROOM, text('after the update'));
    expect((await a.decrypt(ROOM, later)).ok).toBe(true);

    const recoveryKey = newRecoveryKey();
    const sealed = await a.exportBackup(recoveryKey);
    expect(new TextDecoder().decode(sealed)).not.toContain('before the update');

    const phone = await CryptoDevice.open({ store: new MemoryCryptoStore(), userId: alice.userId, deviceId: 'PHONE' });
    const typed = formatRecoveryKey(recoveryKey).toLowerCase();
    expect(await phone.restoreBackup(parseRecoveryKey(typed), sealed)).toEqual([ROOM]);
    expect(phone.userSigningKey).toEqual(a.userSigningKey);
    expect(phone.certified).toBe(true);
    expect(phone.userKey(bob.userId)).toEqual(b.userSigningKey);
    for (const [msg, body] of [
      [early, 'before the update'],
      [later, 'after the update'],
    ] as const) {
      const r = await phone.decrypt(ROOM, msg);
      expect(r.ok && untext(r.plaintext)).toBe(body);
      if (r.ok) expect(r.sender.userId).toBe(bob.userId);
    }
    // The archive only reads: the phone is not a member until it joins with its own leaf.
    await expect(phone.encrypt(ROOM, text('x'))).rejects.toThrow(/not in the group/);
  });

  it('without backupHistory the device keeps forward secrecy: a backup reads only what it had not read', async () => {
    const alice = await makeUser('@alice:a.test', 1);
    const bob = await makeUser('@bob:b.test', 1);
    await introduce([alice, bob]);
    const [a, b] = [alice.devices[0]!, bob.devices[0]!];
    await a.createGroup(ROOM);
    await commitAndFanOut(new TestHost(), a, ROOM, await a.prepareCommit(ROOM, { add: [await claim(b)] }), [a, b]);
    const read = await b.encrypt(ROOM, text('read on the old device'));
    const unread = await b.encrypt(ROOM, text('not read there yet'));
    expect((await a.decrypt(ROOM, read)).ok).toBe(true);
    const recoveryKey = newRecoveryKey();
    const phone = await CryptoDevice.open({ store: new MemoryCryptoStore(), userId: alice.userId, deviceId: 'PHONE' });
    await phone.restoreBackup(recoveryKey, await a.exportBackup(recoveryKey));
    expect((await phone.decrypt(ROOM, read)).ok).toBe(false);
    const r = await phone.decrypt(ROOM, unread);
    expect(r.ok && untext(r.plaintext)).toBe('not read there yet');
  });

  it('a wrong recovery key fails clearly, as does a backup of another account or a mistyped key', async () => {
    const key = newRecoveryKey();
    const sealed = sealBackup(key, '@alice:a.test', text('payload'));
    expect(untext(openBackup(key, '@alice:a.test', sealed))).toBe('payload');
    const wrong = (fn: () => unknown) => {
      try {
        fn();
      } catch (err) {
        return err;
      }
      return null;
    };
    const e1 = wrong(() => openBackup(newRecoveryKey(), '@alice:a.test', sealed));
    expect(e1).toBeInstanceOf(BackupError);
    expect((e1 as BackupError).code).toBe('wrong_recovery_key');
    expect((wrong(() => openBackup(key, '@mallory:a.test', sealed)) as BackupError).code).toBe('wrong_recovery_key');
    const future = sealed.slice();
    future[0] = 2;
    expect((wrong(() => openBackup(key, '@alice:a.test', future)) as BackupError).code).toBe('unsupported_version');
    expect((wrong(() => openBackup(key, '@alice:a.test', sealed.subarray(0, 10))) as BackupError).code).toBe('malformed');
    const formatted = formatRecoveryKey(key);
    expect(formatted).toMatch(/^([A-Z2-9]{4} ){13}[A-Z2-9]{4}$/);
    const typo = `${formatted.slice(0, 5)}${formatted[5] === 'A' ? 'B' : 'A'}${formatted.slice(6)}`;
    expect((wrong(() => parseRecoveryKey(typo)) as BackupError).code).toBe('malformed');
  });
});
