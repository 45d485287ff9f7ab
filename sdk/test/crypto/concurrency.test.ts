import { describe, expect, it } from 'vitest';
import { claim, commitAndFanOut, introduce, makeUser, TestHost, text, untext } from './support.js';

const ROOM = '!enc:a.test';

describe('two commits in one epoch: the host order decides', () => {
  it('the loser processes the winner, retries on the new epoch, and nobody forks', async () => {
    const alice = await makeUser('@alice:a.test', 1);
    const bob = await makeUser('@bob:b.test', 1);
    const carol = await makeUser('@carol:c.test', 1);
    const dave = await makeUser('@dave:d.test', 1);
    await introduce([alice, bob, carol, dave]);
    const [a, b, c, d] = [alice, bob, carol, dave].map((u) => u.devices[0]);
    const host = new TestHost();
    await a!.createGroup(ROOM);
    await commitAndFanOut(host, a!, ROOM, await a!.prepareCommit(ROOM, { add: [await claim(b!)] }), [a!, b!]);

    // Both commit in epoch 1 at once: Alice adds Carol, Bob adds Dave.
    const fromAlice = await a!.prepareCommit(ROOM, { add: [await claim(c!)] });
    const fromBob = await b!.prepareCommit(ROOM, { add: [await claim(d!)] });
    expect(fromAlice.content.epoch).toBe(1);
    expect(fromBob.content.epoch).toBe(1);
    expect(host.submit(fromBob.content).ok).toBe(true); // Bob's arrived first
    expect(host.submit(fromAlice.content)).toEqual({ ok: false, status: 409, epoch: 2 });

    await b!.confirmCommit(ROOM);
    expect((await d!.joinFromWelcome(ROOM, fromBob.welcome!)).ok).toBe(true);
    const applied = await a!.processCommit(ROOM, fromBob.content); // drops Alice's prepared commit
    expect(applied.ok && applied.added.map((m) => m.userId)).toEqual(['@dave:d.test']);
    // Carol's Welcome from the losing commit is worthless: it admits into a forked epoch.
    await a!.discardCommit(ROOM);
    const retry = await a!.prepareCommit(ROOM, { add: [await claim(c!)] });
    expect(retry.content.epoch).toBe(2);
    await commitAndFanOut(host, a!, ROOM, retry, [a!, b!, c!, d!]);

    const epochs = await Promise.all([a, b, c, d].map((x) => x!.epoch(ROOM)));
    expect(epochs).toEqual([3, 3, 3, 3]);
    for (const sender of [a, b, c, d]) {
      const sent = await sender!.encrypt(ROOM, text(`from ${sender!.userId}`));
      for (const receiver of [a, b, c, d]) {
        if (receiver === sender) continue;
        const r = await receiver!.decrypt(ROOM, sent);
        expect(r.ok && untext(r.plaintext)).toBe(`from ${sender!.userId}`);
      }
    }
  });

  it('a commit echoed back after a restart of the committer is adopted from the stored prepared state', async () => {
    const alice = await makeUser('@alice:a.test', 1);
    const bob = await makeUser('@bob:b.test', 1);
    await introduce([alice, bob]);
    const a = alice.devices[0]!;
    const host = new TestHost();
    await a.createGroup(ROOM);
    const add = await a.prepareCommit(ROOM, { add: [await claim(bob.devices[0]!)] });
    expect(host.submit(add.content).ok).toBe(true);
    const echoed = await a.processCommit(ROOM, add.content);
    expect(echoed).toMatchObject({ ok: true, own: true, epoch: 1 });
  });
});
