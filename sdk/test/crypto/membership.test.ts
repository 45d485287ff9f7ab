import { describe, expect, it } from 'vitest';
import { type Member, membershipPlan } from '../../src/crypto/index.js';

const leaf = (leafIndex: number, userId: string, deviceId: string): Member => ({
  leafIndex,
  userId,
  deviceId,
  signatureKey: new Uint8Array(32),
});
const group = [leaf(0, '@alice:a', 'A1'), leaf(1, '@bob:b', 'B1'), leaf(2, '@alice:a', 'A2'), leaf(3, '@carol:c', 'C1')];
const devices = new Map<string, string[]>([
  ['@alice:a', ['A1', 'A2']],
  ['@bob:b', ['B1']],
  ['@carol:c', ['C1']],
]);
const everyone = new Set(['@alice:a', '@bob:b', '@carol:c']);

describe('membershipPlan: membership follows the room', () => {
  const cases: {
    name: string;
    me?: [string, string];
    joined?: Set<string>;
    devices?: Map<string, string[]>;
    offline?: string[];
    remove: string[];
    add: string[];
    committer: string | null;
    mine: boolean;
  }[] = [
    { name: 'in sync: nothing to do', remove: [], add: [], committer: 'A1', mine: false },
    {
      name: 'a kicked user: every device removed, by the lowest online leaf',
      joined: new Set(['@alice:a', '@carol:c']),
      remove: ['B1'],
      add: [],
      committer: 'A1',
      mine: true,
    },
    {
      name: 'the lowest leaf is offline: the next one commits',
      me: ['@bob:b', 'B1'],
      joined: new Set(['@alice:a', '@bob:b']),
      offline: ['A1'],
      remove: ['C1'],
      add: [],
      committer: 'B1',
      mine: true,
    },
    {
      name: 'the leaver is the lowest leaf: it never commits its own removal',
      joined: new Set(['@bob:b', '@carol:c']),
      remove: ['A1', 'A2'],
      add: [],
      committer: 'B1',
      mine: false,
    },
    {
      name: 'only the leaver is online: nobody commits now',
      joined: new Set(['@bob:b', '@carol:c']),
      offline: ['B1', 'C1'],
      remove: ['A1', 'A2'],
      add: [],
      committer: null,
      mine: false,
    },
    {
      name: 'a new device of a member, and a signed-out one',
      devices: new Map([
        ['@alice:a', ['A1', 'A3']],
        ['@bob:b', ['B1']],
        ['@carol:c', ['C1']],
      ]),
      remove: ['A2'],
      add: ['A3'],
      committer: 'A1',
      mine: true,
    },
    {
      name: 'a user joined the room: all their devices added',
      joined: new Set([...everyone, '@dave:d']),
      devices: new Map([...devices, ['@dave:d', ['D2', 'D1']]]),
      remove: [],
      add: ['D1', 'D2'],
      committer: 'A1',
      mine: true,
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const me = c.me ?? ['@alice:a', 'A1'];
      const plan = membershipPlan({
        me: { userId: me[0], deviceId: me[1] },
        group,
        joined: c.joined ?? everyone,
        devices: c.devices ?? devices,
        online: (m) => !(c.offline ?? []).includes(m.deviceId),
      });
      expect(plan.remove.map((r) => r.deviceId)).toEqual(c.remove);
      expect(plan.add.map((r) => r.deviceId)).toEqual(c.add);
      expect(plan.committer?.deviceId ?? null).toBe(c.committer);
      expect(plan.mine).toBe(c.mine);
    });
  }
});
