import type { Member } from './group-state.js';

/**
 * Membership follows the room (docs/protocol.md): which devices a commit must add or remove so the
 * group matches the room state and the users' signed device lists, and which member makes
 * that commit. Pure, so every device computes the same answer from the same inputs:
 *
 * - remove every leaf whose user is no longer joined (leave, kick, ban) and every device no
 *   longer in its user's verified, signed-in device list;
 * - add every verified, signed-in device of a joined user that has no leaf;
 * - the committer is the online member with the lowest leaf index among those staying. If
 *   its commit loses the host's order, everyone recomputes on the new epoch.
 * - nobody online but the leaver: nothing happens now (MLS forbids committing one's own
 *   removal); the first member back computes the same plan and commits it before sending.
 */
export interface MembershipInputs {
  me: { userId: string; deviceId: string };
  /** The group's leaves (`CryptoDevice.members`). */
  group: readonly Member[];
  /** Users whose membership in the room state is `join`. */
  joined: ReadonlySet<string>;
  /** Per joined user, the devices of their verified device list that their server lists as signed in. */
  devices: ReadonlyMap<string, readonly string[]>;
  /** Whether a member device is online; default: all are. */
  online?: (m: Member) => boolean;
}

export interface MembershipPlan {
  remove: { userId: string; deviceId: string }[];
  add: { userId: string; deviceId: string }[];
  /** The member that should commit the plan, or null when no staying member is online. */
  committer: Member | null;
  /** Whether this device is the committer and there is something to commit. */
  mine: boolean;
}

export function membershipPlan(input: MembershipInputs): MembershipPlan {
  const online = input.online ?? (() => true);
  const staysIn = (m: Member) => input.joined.has(m.userId) && (input.devices.get(m.userId) ?? []).includes(m.deviceId);
  const remove = input.group.filter((m) => !staysIn(m)).map((m) => ({ userId: m.userId, deviceId: m.deviceId }));
  const present = new Set(input.group.map((m) => `${m.userId}\u0000${m.deviceId}`));
  const add: MembershipPlan['add'] = [];
  for (const userId of [...input.joined].sort()) {
    for (const deviceId of [...(input.devices.get(userId) ?? [])].sort()) {
      if (!present.has(`${userId}\u0000${deviceId}`)) add.push({ userId, deviceId });
    }
  }
  const candidates = input.group.filter((m) => staysIn(m) && online(m)).sort((a, b) => a.leafIndex - b.leafIndex);
  const committer = candidates[0] ?? null;
  const mine =
    committer !== null &&
    committer.userId === input.me.userId &&
    committer.deviceId === input.me.deviceId &&
    remove.length + add.length > 0;
  return { remove, add, committer, mine };
}
