import { describe, expect, it } from 'vitest';
import { claim, commitAndFanOut, introduce, makeUser, TestHost, text, untext } from './support.js';

const ROOM = '!enc:a.test';

describe('MLS groups across users with several devices', () => {
  it('every device decrypts every message sent after it joined, and knows who sent it', async () => {
    const alice = await makeUser('@alice:a.test', 2);
    const bob = await makeUser('@bob:b.test', 2);
    await introduce([alice, bob]);
    const a0 = alice.devices[0]!;
    const a1 = alice.devices[1]!;
    const everyone = [...alice.devices, ...bob.devices];
    const host = new TestHost();
    await a0.createGroup(ROOM);
    const prepared = await a0.prepareCommit(ROOM, { add: [await claim(a1), ...(await Promise.all(bob.devices.map(claim)))] });
    expect(prepared.welcomeFor).toHaveLength(3);
    await commitAndFanOut(host, a0, ROOM, prepared, everyone);
    for (const d of everyone) expect(await d.epoch(ROOM)).toBe(1);

    const sent = await bob.devices[1]!.encrypt(ROOM, text('hello from bob’s phone'));
    for (const d of everyone) {
      if (d === bob.devices[1]) continue;
      const r = await d.decrypt(ROOM, sent);
      expect(r.ok, d.deviceId).toBe(true);
      if (r.ok) {
        expect(untext(r.plaintext)).toBe('hello from bob’s phone');
        expect(r.sender).toMatchObject({ userId: '@bob:b.test', deviceId: 'DEV1' });
      }
    }
  });

  it('a removed device decrypts nothing sent after its removal; the others go on', async () => {
    const alice = await makeUser('@alice:a.test', 1);
    const bob = await makeUser('@bob:b.test', 2);
    await introduce([alice, bob]);
    const a0 = alice.devices[0]!;
    const everyone = [a0, ...bob.devices];
    const host = new TestHost();
    await a0.createGroup(ROOM);
    await commitAndFanOut(host, a0, ROOM, await a0.prepareCommit(ROOM, { add: await Promise.all(bob.devices.map(claim)) }), everyone);
    const before = await a0.encrypt(ROOM, text('before'));

    const kick = await a0.prepareCommit(ROOM, { remove: [{ userId: bob.userId }] });
    expect(host.submit(kick.content).ok).toBe(true);
    await a0.confirmCommit(ROOM);
    for (const d of bob.devices) {
      const r = await d.processCommit(ROOM, kick.content);
      expect(r.ok && r.selfRemoved).toBe(true);
    }
    const after = await a0.encrypt(ROOM, text('after the kick'));
    for (const d of bob.devices) {
      const r = await d.decrypt(ROOM, after);
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.reason).toBe('not_member');
      // What was sent before the removal still decrypts.
      expect((await d.decrypt(ROOM, before)).ok).toBe(true);
    }
    expect(await a0.members(ROOM)).toHaveLength(1);
  });
});

describe('external join', () => {
  it('a device joins by external commit from the published GroupInfo; members apply it and it reads from then on', async () => {
    const alice = await makeUser('@alice:a.test', 1);
    const bob = await makeUser('@bob:b.test', 1);
    const carol = await makeUser('@carol:c.test', 1);
    await introduce([alice, bob, carol]);
    const [a, b, c] = [alice.devices[0]!, bob.devices[0]!, carol.devices[0]!];
    const host = new TestHost();
    await a.createGroup(ROOM);
    const add = await a.prepareCommit(ROOM, { add: [await claim(b)] });
    expect(add.content.group_info).toBeDefined(); // small group: inline
    await commitAndFanOut(host, a, ROOM, add, [a, b]);
    const before = await a.encrypt(ROOM, text('before carol'));

    const join = await c.prepareExternalJoin(ROOM, await b.exportGroupInfo(ROOM));
    expect(join.content.epoch).toBe(1);
    expect(await c.hasGroup(ROOM)).toBe(false); // not until the host sequenced it
    expect(host.submit(join.content).ok).toBe(true);
    await c.confirmCommit(ROOM);
    for (const d of [a, b]) {
      const r = await d.processCommit(ROOM, join.content);
      expect(r.ok && r.added.map((m) => m.userId)).toEqual(['@carol:c.test']);
    }
    const after = await b.encrypt(ROOM, text('welcome carol'));
    const got = await c.decrypt(ROOM, after);
    expect(got.ok && untext(got.plaintext)).toBe('welcome carol');
    expect(await c.decrypt(ROOM, before)).toMatchObject({ ok: false, reason: 'unknown_epoch' });
  });
});
