import type { AuthenticationService } from 'ts-mls';
import {
  type CiphersuiteImpl,
  type ClientConfig,
  type ClientState,
  type Credential,
  decodeGroupState,
  defaultKeyPackageEqualityConfig,
  defaultLifetimeConfig,
  defaultPaddingConfig,
  type EpochReceiverData,
  encodeGroupState,
  type KeyRetentionConfig,
  type PrivateMessage,
  type RatchetTree,
} from 'ts-mls';
import { unprotectPrivateMessage } from 'ts-mls/messageProtection.js';
import { type Failure, fail } from './failures.js';
import { type DeviceIdentity, parseCredential } from './identity.js';

/**
 * How many past epochs' receiver secrets a device keeps so that late messages still decrypt
 * (docs/protocol.md), and how far a sender's ratchet may be skipped or reordered within an epoch.
 * Bounded: the secrets of older epochs are deleted, which is what forward secrecy asks.
 */
export const DEFAULT_KEY_RETENTION: KeyRetentionConfig = {
  retainKeysForEpochs: 8,
  retainKeysForGenerations: 64,
  maximumForwardRatchetSteps: 2000,
};

export function clientConfig(authService: AuthenticationService, retention: KeyRetentionConfig): ClientConfig {
  return {
    keyRetentionConfig: retention,
    lifetimeConfig: defaultLifetimeConfig,
    keyPackageEqualityConfig: defaultKeyPackageEqualityConfig,
    // Pad application messages to a multiple of 32 bytes so lengths leak less.
    paddingConfig: defaultPaddingConfig,
    authService,
  };
}

export function encodeState(state: ClientState): Uint8Array {
  return encodeGroupState(state);
}

export function decodeState(bytes: Uint8Array, config: ClientConfig): ClientState {
  const decoded = decodeGroupState(bytes, 0);
  if (decoded === undefined) throw new Error('stored group state is corrupt');
  return { ...decoded[0], clientConfig: config };
}

export interface Member {
  leafIndex: number;
  userId: string;
  deviceId: string;
  signatureKey: Uint8Array;
}

export function leafIdentity(tree: RatchetTree, leafIndex: number): (DeviceIdentity & { signatureKey: Uint8Array }) | null {
  const node = tree[leafIndex * 2];
  if (node === undefined || node.nodeType !== 'leaf') return null;
  const id = parseCredential(node.leaf.credential as Credential);
  return id === null ? null : { ...id, signatureKey: node.leaf.signaturePublicKey };
}

export function members(tree: RatchetTree): Member[] {
  const out: Member[] = [];
  for (let i = 0; i < tree.length; i += 2) {
    const id = leafIdentity(tree, i / 2);
    if (id !== null) out.push({ leafIndex: i / 2, userId: id.user_id, deviceId: id.device_id, signatureKey: id.signatureKey });
  }
  return out;
}

export type Unprotected =
  | { ok: true; plaintext: Uint8Array; sender: Member; newState: ClientState }
  | Failure<'unknown_epoch' | 'not_member' | 'corrupt'>;

/**
 * Decrypts an application message like ts-mls's processPrivateMessage, but also returns who
 * sent it (the leaf of the sender in the ratchet tree of the message's epoch), which the
 * public API keeps to itself.
 */
export async function unprotectApplication(state: ClientState, pm: PrivateMessage, cs: CiphersuiteImpl): Promise<Unprotected> {
  const current = state.groupContext.epoch;
  type Receiver = {
    senderDataSecret: Uint8Array;
    secretTree: ClientState['secretTree'];
    ratchetTree: RatchetTree;
    groupContext: ClientState['groupContext'];
  };
  let receiver: Receiver;
  let past: EpochReceiverData | undefined;
  if (pm.epoch === current) {
    receiver = {
      senderDataSecret: state.keySchedule.senderDataSecret,
      secretTree: state.secretTree,
      ratchetTree: state.ratchetTree,
      groupContext: state.groupContext,
    };
  } else if (pm.epoch > current) {
    return fail(
      'unknown_epoch',
      `message is for epoch ${pm.epoch}, this device is at ${current}: process the commits before it, then retry`,
    );
  } else {
    past = state.historicalReceiverData.get(pm.epoch);
    if (past === undefined) return fail('unknown_epoch', `message is for epoch ${pm.epoch}, older than the epochs this device keeps`);
    receiver = past;
  }
  let result: Awaited<ReturnType<typeof unprotectPrivateMessage>>;
  try {
    result = await unprotectPrivateMessage(
      receiver.senderDataSecret,
      pm,
      receiver.secretTree,
      receiver.ratchetTree,
      receiver.groupContext,
      state.clientConfig.keyRetentionConfig,
      cs,
    );
  } catch (err) {
    const message = (err as Error).message ?? '';
    // Sender data names a leaf that is blank or a parent: the sender is not in this epoch's group.
    if (/blank|not a leaf|leaf node|sender/i.test(message) && !/signature|decrypt|tag/i.test(message)) {
      return fail('not_member', `sender is not a member of epoch ${pm.epoch}`);
    }
    return fail('corrupt', `does not decrypt or verify (${message.slice(0, 120)})`);
  }
  const content = result.content.content;
  if (content.contentType !== 'application') return fail('corrupt', 'commits and proposals travel as room.mls.commit, not room.encrypted');
  if (content.sender.senderType !== 'member') return fail('not_member', 'sender is not a member leaf');
  const id = leafIdentity(receiver.ratchetTree, content.sender.leafIndex);
  if (id === null) return fail('not_member', 'sender leaf has no Parley credential');
  const newState: ClientState =
    past === undefined
      ? { ...state, secretTree: result.tree }
      : { ...state, historicalReceiverData: new Map(state.historicalReceiverData).set(pm.epoch, { ...past, secretTree: result.tree }) };
  return {
    ok: true,
    plaintext: content.applicationData,
    sender: { leafIndex: content.sender.leafIndex, userId: id.user_id, deviceId: id.device_id, signatureKey: id.signatureKey },
    newState,
  };
}
