import { describe, expect, it } from 'vitest';
import { decodeKeyPackage, loadSuite, verifyDeviceList } from '../../src/crypto/index.js';
import { claim, commitAndFanOut, introduce, makeUser, TestHost } from './support.js';

// One table of hostile values for every entry point that takes wire data: each must answer
// with a typed failure (or null / ok: false), never throw, and never change the group.
const HOSTILE: unknown[] = [
  undefined,
  null,
  0,
  -1,
  1.5,
  Number.NaN,
  '',
  'not*base64url',
  'A',
  'AAAA',
  'A'.repeat(100_000),
  {},
  [],
  { toString: () => 'x' },
  '__proto__',
];
const ROOM = '!enc:a.test';

describe('hostile wire input', () => {
  it('decrypt, processCommit and joinFromWelcome answer with a typed failure for every hostile value', async () => {
    const alice = await makeUser('@alice:a.test', 1);
    const bob = await makeUser('@bob:b.test', 1);
    await introduce([alice, bob]);
    const [a, b] = [alice.devices[0]!, bob.devices[0]!];
    await a.createGroup(ROOM);
    await commitAndFanOut(new TestHost(), a, ROOM, await a.prepareCommit(ROOM, { add: [await claim(b)] }), [a, b]);
    const valid = await a.encrypt(ROOM, new Uint8Array(3));
    const validCommit = (await a.prepareCommit(ROOM, { update: true })).content;
    await a.discardCommit(ROOM);
    for (const v of HOSTILE) {
      for (const content of [
        { epoch: v, ciphertext: valid.ciphertext },
        { epoch: v, commit: validCommit.commit },
        { epoch: 1, ciphertext: v },
        { epoch: v, ciphertext: 'AAAA' },
        v,
      ]) {
        const r = await b.decrypt(ROOM, content as never);
        expect(r.ok, `decrypt ${JSON.stringify(content)}`).toBe(false);
        if (!r.ok) expect(r.reason).toBe('corrupt');
        const c = await b.processCommit(ROOM, { epoch: 1, commit: v } as never);
        expect(c.ok).toBe(false);
        const c2 = await b.processCommit(ROOM, content as never);
        expect(c2.ok).toBe(false);
      }
      expect((await b.joinFromWelcome(ROOM, v as never)).ok).toBe(false);
      expect(decodeKeyPackage(v as never)).toBeNull();
    }
    expect(await b.epoch(ROOM)).toBe(1);
  });

  it('verifyDeviceList answers ok: false for hostile lists, never throws', async () => {
    const { primitives } = await loadSuite();
    const bob = await makeUser('@bob:b.test', 1);
    const lists: unknown[] = [
      ...HOSTILE,
      { ...bob.list, signature: 'A'.repeat(86) },
      { ...bob.list, user_signing_key: 'short' },
      { ...bob.list, devices: 'nope' },
      { ...bob.list, version: 2 },
      { ...bob.list, extra: 1 },
    ];
    for (const l of lists) {
      const check = await verifyDeviceList(primitives, l as never, bob.userId);
      expect(check.ok, JSON.stringify(l)?.slice(0, 60)).toBe(false);
    }
  });
});
