import type { MlsCommitContent } from '@parley/schemas';
import { type ClientState, decodeMlsMessage, emptyPskIndex, encodeMlsMessage, joinGroup, joinGroupExternal, type MLSMessage } from 'ts-mls';
import { type DeviceGroups, INLINE_GROUP_INFO_MEMBERS, isEpoch, type PreparedCommit } from './device-groups.js';
import { equalBytes, fromB64u, toB64u, utf8 } from './encoding.js';
import { CryptoFailureError, type DecryptFailureReason, type Failure, fail } from './failures.js';
import { members } from './group-state.js';
import type { KeyPackagePool } from './key-packages.js';

// How a CryptoDevice gets into a group: from a Welcome, or by external commit from a GroupInfo.

/** `users`: the Welcome's group holds devices of these users, whose keys are not pinned yet: fetch their device lists and retry. */
export type JoinResult = { ok: true; roomId: string; epoch: number } | (Failure<DecryptFailureReason> & { users?: string[] });

/**
 * The current epoch's GroupInfo (with external_pub and the ratchet tree), b64u MLSMessage:
 * what a device needs to join by external commit. For groups too large to inline it in the
 * commit event, upload it as media and put the reference in `group_info_ref`.
 */
export async function exportGroupInfo(g: DeviceGroups, roomId: string): Promise<string> {
  return g.lock(roomId, async () => {
    const state = await g.state(roomId);
    if (state === undefined) throw new CryptoFailureError('missing_welcome', `${roomId}: this device is not in the group`);
    return g.groupInfo(state);
  });
}

/**
 * Joins from an `mls.welcome` (b64u MLSMessage Welcome). `slot`: the room's next commit
 * slot after the commit that added this device (the `epoch` of `MlsWelcomeContent`);
 * default the MLS epoch, which it equals unless some commit was skipped.
 */
export async function joinFromWelcome(g: DeviceGroups, roomId: string, welcomeB64: string, slot?: number): Promise<JoinResult> {
  return g.lock(roomId, async () => {
    let msg: MLSMessage | undefined;
    try {
      msg = decodeMlsMessage(fromB64u(welcomeB64, 'welcome'), 0)?.[0];
    } catch {
      msg = undefined;
    }
    if (msg?.wireformat !== 'mls_welcome') return fail('corrupt', 'not an MLS Welcome');
    let found: Awaited<ReturnType<KeyPackagePool['find']>> = null;
    let ref: Uint8Array | undefined;
    for (const s of msg.welcome.secrets) {
      found = await g.me.keyPackages().find(s.newMember);
      if (found !== null) {
        ref = s.newMember;
        break;
      }
    }
    if (found === null || ref === undefined) {
      return fail('no_key_package', 'the Welcome names no KeyPackage this device holds (used up or lost): ask to be re-added');
    }
    let state: ClientState;
    g.unknownUsers.clear();
    try {
      state = await joinGroup(
        msg.welcome,
        found.publicPackage,
        found.privatePackage,
        emptyPskIndex,
        g.suite.impl,
        undefined,
        undefined,
        g.config,
      );
    } catch (err) {
      const message = (err as Error).message ?? '';
      if (g.unknownUsers.size > 0) {
        const users = [...g.unknownUsers].sort();
        return { ...fail('not_member', `no pinned user signing key for ${users.join(', ')}: fetch their device lists and retry`), users };
      }
      if (/credential/i.test(message))
        return fail('not_member', `the group holds a device whose user key is not trusted: fetch device lists and retry (${message})`);
      return fail('corrupt', `Welcome does not verify (${message.slice(0, 120)})`);
    }
    if (!equalBytes(state.groupContext.groupId, utf8(roomId))) return fail('corrupt', 'Welcome is for another group');
    const existing = await g.state(roomId);
    if (existing !== undefined && existing.groupActiveState.kind === 'active' && existing.groupContext.epoch >= state.groupContext.epoch) {
      return { ok: true, roomId, epoch: Number(existing.groupContext.epoch) };
    }
    await g.save(roomId, state);
    await g.setSlot(roomId, isEpoch(slot) ? slot : Number(state.groupContext.epoch));
    await g.me.keyPackages().consume(ref);
    return { ok: true, roomId, epoch: Number(state.groupContext.epoch) };
  });
}

/**
 * Prepares an external commit (RFC 9420 §12.4.3.2) from the GroupInfo the last committer
 * published: how a device joins without a Welcome, or rejoins after losing its state
 * (`resync`). Sent and confirmed like any prepared commit.
 */
export async function prepareExternalJoin(
  g: DeviceGroups,
  roomId: string,
  groupInfoB64: string,
  resync = false,
  slot?: number,
): Promise<PreparedCommit> {
  g.assertCertified();
  return g.lock(roomId, async () => {
    const msg = decodeMlsMessage(fromB64u(groupInfoB64, 'group_info'), 0)?.[0];
    if (msg?.wireformat !== 'mls_group_info') throw new CryptoFailureError('corrupt', 'not an MLS GroupInfo');
    if (!equalBytes(msg.groupInfo.groupContext.groupId, utf8(roomId)))
      throw new CryptoFailureError('corrupt', 'GroupInfo is for another group');
    const kp = await g.ownKeyPackage();
    let joined: Awaited<ReturnType<typeof joinGroupExternal>>;
    g.unknownUsers.clear();
    try {
      joined = await joinGroupExternal(msg.groupInfo, kp.publicPackage, kp.privatePackage, resync, g.suite.impl, undefined, g.config);
      const mine = (s: ClientState) => members(s.ratchetTree).filter((m) => equalBytes(m.signatureKey, g.me.signatureKeys.publicKey));
      if (!resync && mine(joined.newState).length > 1) {
        // The group still holds a leaf of this device (added while its Welcome was on the way,
        // or its state was lost): replace that leaf rather than appear twice.
        joined = await joinGroupExternal(msg.groupInfo, kp.publicPackage, kp.privatePackage, true, g.suite.impl, undefined, g.config);
      }
    } catch (err) {
      if (g.unknownUsers.size > 0) {
        const users = [...g.unknownUsers].sort();
        throw new CryptoFailureError('not_member', `no pinned user signing key for ${users.join(', ')}`, users);
      }
      throw new CryptoFailureError('corrupt', `external join refused: ${(err as Error).message}`);
    }
    // The room's next commit slot (default: the GroupInfo's epoch, equal unless a commit was skipped).
    const epoch = isEpoch(slot) ? slot : Number(msg.groupInfo.groupContext.epoch);
    const commit = toB64u(encodeMlsMessage({ version: 'mls10', wireformat: 'mls_public_message', publicMessage: joined.publicMessage }));
    await g.savePending(roomId, { commit, state: joined.newState, epoch });
    // Until the host sequences it, the device has no group: confirmCommit installs it.
    const content: MlsCommitContent = { epoch, commit };
    if (members(joined.newState.ratchetTree).length <= INLINE_GROUP_INFO_MEMBERS) content.group_info = await g.groupInfo(joined.newState);
    return { roomId, content, welcomeFor: [] };
  });
}
