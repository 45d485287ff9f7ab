import type { MlsCommitContent } from '@parley/schemas';
import {
  type ClientState,
  createCommit,
  decodeMlsMessage,
  emptyPskIndex,
  encodeMlsMessage,
  type MLSMessage,
  createGroup as mlsCreateGroup,
  type Proposal,
  processPublicMessage,
} from 'ts-mls';
import { type CommitResult, changes, type DeviceGroups, INLINE_GROUP_INFO_MEMBERS, isEpoch, type PreparedCommit } from './device-groups.js';
import { equalBytes, fromB64u, toB64u, utf8 } from './encoding.js';
import { CryptoFailureError, type Failure, fail } from './failures.js';
import { type Member, members } from './group-state.js';
import { decodeKeyPackage } from './key-packages.js';

// A CryptoDevice's commits (docs/protocol.md, the commit rule): made, confirmed once the host
// sequenced them, discarded when another took the slot, and applied in the host's order.

/** Starts the MLS group of a room this user just made encrypted (epoch 0, only this device). */
export async function createGroup(g: DeviceGroups, roomId: string): Promise<void> {
  g.assertCertified();
  await g.lock(roomId, async () => {
    if ((await g.state(roomId)) !== undefined) throw new TypeError(`${roomId}: this device already has its group`);
    const kp = await g.ownKeyPackage();
    const state = await mlsCreateGroup(utf8(roomId), kp.publicPackage, kp.privatePackage, [], g.suite.impl, g.config);
    await g.save(roomId, state);
  });
}

/**
 * Prepares a commit that adds devices (by claimed KeyPackage), removes devices (all of a
 * user's when `deviceId` is omitted) and/or refreshes this device's own keys (`update`).
 * Nothing changes locally until the host sequenced it: see `confirmCommit`.
 */
export async function prepareCommit(
  g: DeviceGroups,
  roomId: string,
  changes: { add?: string[]; remove?: { userId: string; deviceId?: string }[]; update?: boolean },
): Promise<PreparedCommit> {
  return g.lock(roomId, async () => {
    const state = await g.state(roomId);
    if (state === undefined) throw new CryptoFailureError('missing_welcome', `${roomId}: this device is not in the group`);
    const proposals: Proposal[] = [];
    const welcomeFor: PreparedCommit['welcomeFor'] = [];
    const current = members(state.ratchetTree);
    for (const b64 of changes.add ?? []) {
      const kp = decodeKeyPackage(b64);
      if (kp === null) throw new CryptoFailureError('corrupt', 'add: not a KeyPackage');
      const identity = members([{ nodeType: 'leaf', leaf: kp.leafNode } as never])[0];
      if (identity === undefined) throw new CryptoFailureError('not_member', 'add: KeyPackage without a Parley device credential');
      if (current.some((m) => m.userId === identity.userId && m.deviceId === identity.deviceId)) continue; // already in
      proposals.push({ proposalType: 'add', add: { keyPackage: kp } });
      welcomeFor.push({ userId: identity.userId, deviceId: identity.deviceId });
    }
    for (const r of changes.remove ?? []) {
      for (const m of current) {
        if (m.userId === r.userId && (r.deviceId === undefined || m.deviceId === r.deviceId)) {
          if (m.userId === g.me.userId && m.deviceId === g.me.deviceId)
            throw new TypeError('remove: a device cannot commit its own removal');
          proposals.push({ proposalType: 'remove', remove: { removed: m.leafIndex } });
        }
      }
    }
    if (proposals.length === 0 && changes.update !== true) throw new TypeError('prepareCommit: nothing to change');
    let result: Awaited<ReturnType<typeof createCommit>>;
    try {
      result = await createCommit(
        { state, cipherSuite: g.suite.impl },
        // The ratchet tree rides in the Welcome only: without an add there is none, and
        // encoding a 500-leaf tree for a GroupInfo nobody reads cost a remove ≈ 5–10 ms.
        { extraProposals: proposals, wireAsPublicMessage: true, ratchetTreeExtension: welcomeFor.length > 0 },
      );
    } catch (err) {
      throw new CryptoFailureError('not_member', `commit refused locally: ${(err as Error).message}`);
    }
    const epoch = await g.slot(roomId, state);
    const commit = toB64u(encodeMlsMessage(result.commit));
    await g.savePending(roomId, { commit, state: result.newState, epoch });
    const content: MlsCommitContent = { epoch, commit };
    // A GroupInfo carries the whole ratchet tree: inline only while it surely fits the event
    // (schemas: 16 KiB); larger groups publish it with exportGroupInfo after confirming.
    if (members(result.newState.ratchetTree).length <= INLINE_GROUP_INFO_MEMBERS) content.group_info = await g.groupInfo(result.newState);
    const prepared: PreparedCommit = { roomId, content, welcomeFor };
    if (result.welcome !== undefined) {
      prepared.welcome = toB64u(encodeMlsMessage({ version: 'mls10', wireformat: 'mls_welcome', welcome: result.welcome }));
    }
    return prepared;
  });
}

/** The host sequenced this device's prepared commit: move to the new epoch. */
export async function confirmCommit(g: DeviceGroups, roomId: string): Promise<number> {
  return g.lock(roomId, async () => {
    const pending = await g.loadPending(roomId);
    if (pending === undefined) throw new TypeError(`${roomId}: no prepared commit to confirm`);
    await g.adoptPending(roomId, pending);
    await g.setSlot(roomId, pending.epoch + 1);
    return Number(pending.state.groupContext.epoch);
  });
}

/** The host refused this device's commit (another won the epoch): forget it. */
export async function discardCommit(g: DeviceGroups, roomId: string): Promise<void> {
  await g.lock(roomId, () => g.dropPending(roomId));
}

/**
 * Applies a `room.mls.commit` in the host's order. `content.epoch` is the room's commit
 * slot (how many commits the host sequenced before this one, valid or not), which equals
 * the MLS epoch until some commit fails to validate: the host cannot validate MLS, so a
 * bad commit still takes its slot, and every device skips it alike and goes on.
 *
 * - slot already passed: `stale_epoch` (a replay, or the loser of an epoch), nothing changes;
 * - slot ahead of this device: `unknown_epoch` (earlier commits missing), nothing changes;
 * - this device's own prepared commit: adopted;
 * - a commit that does not apply (wrong MLS epoch, undecodable, bad signature, from a
 *   non-member): skipped — its slot is used up and the failure says why;
 * - a commit naming a user whose signing key this device has not pinned yet: `not_member`
 *   with `retry: true` and the slot NOT used up — fetch their device list and call again,
 *   since another device that knows the key would apply it (skipping would fork).
 */
export async function processCommit(g: DeviceGroups, roomId: string, content: MlsCommitContent): Promise<CommitResult> {
  return g.lock(roomId, async () => {
    const state = await g.state(roomId);
    if (state === undefined) {
      // The echo of this device's external join installs the group it prepared.
      const pending = await g.loadPending(roomId);
      if (pending !== undefined && pending.commit === content?.commit && pending.epoch === content.epoch) {
        await g.adoptPending(roomId, pending);
        await g.setSlot(roomId, pending.epoch + 1);
        return changes([], pending.state, g.me, true);
      }
      return fail('missing_welcome', `${roomId}: this device is not in the group (its Welcome has not arrived)`);
    }
    if (!isEpoch(content?.epoch)) return fail('corrupt', `event epoch ${String(content?.epoch)} is not a commit slot`);
    const slot = await g.slot(roomId, state);
    if (content.epoch < slot)
      return fail('stale_epoch', `commit for slot ${content.epoch}; the room is past it, at ${slot} (replay or a losing commit)`);
    if (content.epoch > slot)
      return fail('unknown_epoch', `commit for slot ${content.epoch}; this device is at ${slot}: earlier commits are missing`);
    const skip = async (result: Failure): Promise<CommitResult> => {
      await g.setSlot(roomId, slot + 1);
      return result;
    };
    let msg: MLSMessage | undefined;
    try {
      msg = decodeMlsMessage(fromB64u(content.commit, 'commit'), 0)?.[0];
    } catch {
      msg = undefined;
    }
    if (msg?.wireformat !== 'mls_public_message' || msg.publicMessage.content.contentType !== 'commit') {
      return skip(fail('corrupt', 'not an MLS PublicMessage commit (skipped)'));
    }
    const pm = msg.publicMessage;
    if (!equalBytes(pm.content.groupId, utf8(roomId))) return skip(fail('corrupt', 'commit is for another group (skipped)'));
    const before = members(state.ratchetTree);
    const pending = await g.loadPending(roomId);
    if (pending !== undefined && pending.commit === content.commit) {
      await g.adoptPending(roomId, pending);
      await g.setSlot(roomId, slot + 1);
      return changes(before, pending.state, g.me, true);
    }
    const current = state.groupContext.epoch;
    if (state.groupActiveState.kind === 'removedFromGroup') return skip(fail('not_member', 'this device was removed from the group'));
    if (pm.content.epoch !== current) {
      return skip(fail('corrupt', `commit made in MLS epoch ${pm.content.epoch}, the group is at ${current} (skipped)`));
    }
    let committer: Member | undefined;
    let newState: ClientState;
    g.unknownUsers.clear();
    try {
      const result = await processPublicMessage(state, pm, emptyPskIndex, g.suite.impl, (incoming) => {
        if (incoming.kind !== 'commit') return 'reject';
        committer = incoming.senderLeafIndex === undefined ? undefined : before.find((m) => m.leafIndex === incoming.senderLeafIndex);
        return 'accept';
      });
      if (result.actionTaken === 'reject') return skip(fail('corrupt', 'a proposal where a commit was expected (skipped)'));
      newState = result.newState;
    } catch (err) {
      const message = (err as Error).message ?? '';
      if (g.unknownUsers.size > 0) {
        const users = [...g.unknownUsers].sort();
        return {
          ...fail('not_member', `no pinned user signing key for ${users.join(', ')}: fetch their device lists and retry`),
          retry: true,
          users,
        };
      }
      if (/credential/i.test(message))
        return skip(fail('not_member', `commit names a device its user key did not sign (skipped: ${message})`));
      if (/membership|tag|signature/i.test(message))
        return skip(fail('not_member', `commit not from a member of epoch ${current} (skipped: ${message})`));
      return skip(fail('corrupt', `commit does not verify (skipped: ${message.slice(0, 120)})`));
    }
    // External commits have no member sender: the committer is the leaf they add.
    // A resync takes the leaf index its old leaf had: the new leaf is the one whose HPKE key changed.
    const hpke = (st: ClientState, i: number) => {
      const node = st.ratchetTree[i * 2];
      return node?.nodeType === 'leaf' ? toB64u(node.leaf.hpkePublicKey) : '';
    };
    committer ??= members(newState.ratchetTree).find(
      (m) => !before.some((b) => b.leafIndex === m.leafIndex) || hpke(newState, m.leafIndex) !== hpke(state, m.leafIndex),
    );
    if (committer === undefined || !g.me.isRoomMember(roomId, committer.userId)) {
      return skip(fail('not_member', `commit from ${committer?.userId ?? 'an unknown leaf'}, not a member of the room (skipped)`));
    }
    await g.save(roomId, newState);
    await g.setSlot(roomId, slot + 1);
    // A prepared commit of this device for the same slot lost the host's order.
    if (pending !== undefined) await g.dropPending(roomId);
    return changes(before, newState, g.me, false);
  });
}
