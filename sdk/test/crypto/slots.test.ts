import { describe, expect, it } from 'vitest';
import { toB64u } from '../../src/crypto/index.js';
import { claim, commitAndFanOut, introduce, makeUser, TestHost, text, untext } from './support.js';

const ROOM = '!enc:a.test';

describe('commit slots: the host counts commits it cannot validate', () => {
  it('a bad commit uses up its slot on every device alike, and the group goes on', async () => {
    const alice = await makeUser('@alice:a.test', 1);
    const bob = await makeUser('@bob:b.test', 1);
    const carol = await makeUser('@carol:c.test', 1);
    await introduce([alice, bob, carol]);
    const [a, b, c] = [alice.devices[0]!, bob.devices[0]!, carol.devices[0]!];
    const host = new TestHost();
    await a.createGroup(ROOM);
    await commitAndFanOut(host, a, ROOM, await a.prepareCommit(ROOM, { add: [await claim(b), await claim(c)] }), [a, b, c]);

    // Bob (a member gone bad) sends garbage for slot 1; the host sequences it (it cannot tell).
    const garbage = { epoch: 1, commit: toB64u(new Uint8Array(64).fill(7)) };
    expect(host.submit(garbage).ok).toBe(true);
    // And a real commit of his, replayed into slot 2 by a hostile server: made in an old epoch.
    const replayed = { ...host.commits[0]!, epoch: 2 };
    expect(host.submit(replayed).ok).toBe(true);
    for (const d of [a, b, c]) {
      expect(await d.processCommit(ROOM, garbage)).toMatchObject({ ok: false, reason: 'corrupt' });
      expect(await d.processCommit(ROOM, replayed)).toMatchObject({ ok: false, reason: 'corrupt' });
      expect(await d.epoch(ROOM)).toBe(1); // MLS epoch unchanged
      expect(await d.slot(ROOM)).toBe(3); // both slots used up
    }
    const update = await c.prepareCommit(ROOM, { update: true });
    expect(update.content.epoch).toBe(3);
    await commitAndFanOut(host, c, ROOM, update, [a, b, c]);
    for (const d of [a, b, c]) expect([await d.epoch(ROOM), await d.slot(ROOM)]).toEqual([2, 4]);
    const r = await b.decrypt(ROOM, await a.encrypt(ROOM, text('still one group')));
    expect(r.ok && untext(r.plaintext)).toBe('still one group');
  });

  it('a commit adding a user this device has no key for waits (retry) instead of being skipped', async () => {
    const alice = await makeUser('@alice:a.test', 1);
    const bob = await makeUser('@bob:b.test', 1);
    const dave = await makeUser('@dave:d.test', 1);
    await introduce([alice, bob]);
    await introduce([alice, dave]);
    const [a, b, d] = [alice.devices[0]!, bob.devices[0]!, dave.devices[0]!];
    const host = new TestHost();
    await a.createGroup(ROOM);
    await commitAndFanOut(host, a, ROOM, await a.prepareCommit(ROOM, { add: [await claim(b)] }), [a, b]);
    const add = await a.prepareCommit(ROOM, { add: [await claim(d)] });
    expect(host.submit(add.content).ok).toBe(true);
    await a.confirmCommit(ROOM);
    const first = await b.processCommit(ROOM, add.content);
    expect(first).toMatchObject({ ok: false, reason: 'not_member', retry: true, users: ['@dave:d.test'] });
    expect(await b.slot(ROOM)).toBe(1); // not used up
    expect((await b.trustDeviceList(dave.list, dave.userId)).ok).toBe(true);
    expect(await b.processCommit(ROOM, add.content)).toMatchObject({ ok: true, epoch: 2 });
  });
});
