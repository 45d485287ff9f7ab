import type { EncryptedContent } from '@parley/schemas';
import { createApplicationMessage, decodeMlsMessage, encodeMlsMessage, type MLSMessage } from 'ts-mls';
import { type DeviceGroups, isEpoch } from './device-groups.js';
import { equalBytes, fromB64u, toB64u, utf8 } from './encoding.js';
import { CryptoFailureError, type DecryptFailureReason, type Failure, fail } from './failures.js';
import { decodeState, encodeState, type Member, unprotectApplication } from './group-state.js';

// A CryptoDevice's application messages: `room.encrypted` out and in, and the read-only
// archives a key backup restored.

export type DecryptResult = { ok: true; plaintext: Uint8Array; sender: Member; epoch: number } | Failure<DecryptFailureReason>;

/** Most a `room.encrypted` plaintext may be, so the ciphertext fits an event (schemas MAX_MLS_MESSAGE_B64). */
export const MAX_PLAINTEXT_BYTES = 32 * 1024;

/** Encrypts for `room.encrypted`. The advanced ratchet is stored before the ciphertext is returned. */
export async function encrypt(g: DeviceGroups, roomId: string, plaintext: Uint8Array): Promise<EncryptedContent> {
  if (!(plaintext instanceof Uint8Array)) throw new TypeError('plaintext: expected a Uint8Array');
  if (plaintext.length > MAX_PLAINTEXT_BYTES)
    throw new RangeError(`plaintext: ${plaintext.length} bytes, more than ${MAX_PLAINTEXT_BYTES}`);
  return g.lock(roomId, async () => {
    const state = await g.state(roomId);
    if (state === undefined) throw new CryptoFailureError('missing_welcome', `${roomId}: this device is not in the group`);
    if (state.groupActiveState.kind !== 'active')
      throw new CryptoFailureError('not_member', `${roomId}: this device was removed from the group`);
    const result = await createApplicationMessage(state, plaintext, g.suite.impl);
    await g.save(roomId, result.newState);
    const ciphertext = toB64u(
      encodeMlsMessage({ version: 'mls10', wireformat: 'mls_private_message', privateMessage: result.privateMessage }),
    );
    return { epoch: Number(result.privateMessage.epoch), ciphertext };
  });
}

/** Decrypts a `room.encrypted`; a failure names its reason (see failures.ts). */
export async function decrypt(g: DeviceGroups, roomId: string, content: EncryptedContent): Promise<DecryptResult> {
  return g.lock(roomId, async () => {
    let msg: MLSMessage | undefined;
    try {
      msg = decodeMlsMessage(fromB64u(content.ciphertext, 'ciphertext'), 0)?.[0];
    } catch {
      msg = undefined;
    }
    if (msg?.wireformat !== 'mls_private_message') return fail('corrupt', 'not an MLS PrivateMessage');
    const pm = msg.privateMessage;
    if (!equalBytes(pm.groupId, utf8(roomId))) return fail('corrupt', 'message is for another group');
    if (!isEpoch(content.epoch) || BigInt(content.epoch) !== pm.epoch) {
      return fail('corrupt', `event says epoch ${String(content.epoch)}, the message says ${pm.epoch}`);
    }
    const state = await g.state(roomId);
    let result: Awaited<ReturnType<typeof unprotectApplication>> | undefined;
    if (state !== undefined) {
      if (state.groupActiveState.kind === 'removedFromGroup' && pm.epoch > state.groupContext.epoch) {
        return fail('not_member', 'this device was removed from the group before this message');
      }
      result = await unprotectApplication(state, pm, g.suite.impl);
      if (result.ok) await g.save(roomId, result.newState);
    }
    if (result === undefined || (!result.ok && result.reason === 'unknown_epoch')) {
      const archived = await decryptFromArchive(g, roomId, pm);
      if (archived !== null) result = archived;
    }
    if (result === undefined) return fail('missing_welcome', `${roomId}: this device is not in the group (its Welcome has not arrived)`);
    if (!result.ok) return result;
    if (!g.me.isRoomMember(roomId, result.sender.userId)) {
      return fail('not_member', `sender ${result.sender.userId} is not a member of the room`);
    }
    return { ok: true, plaintext: result.plaintext, sender: result.sender, epoch: Number(pm.epoch) };
  });
}

/** Group states restored from a key backup decrypt the past they cover (never used to send). */
export async function decryptFromArchive(g: DeviceGroups, roomId: string, pm: Parameters<typeof unprotectApplication>[1]) {
  for (const key of await g.store.list(`archive/${roomId}/`)) {
    const raw = await g.store.get(key);
    if (raw === undefined) continue;
    const archived = decodeState(raw, g.config);
    if (pm.epoch > archived.groupContext.epoch) continue;
    const result = await unprotectApplication(archived, pm, g.suite.impl);
    if (result.ok) {
      await g.store.put(key, encodeState(result.newState));
      return result;
    }
  }
  return null;
}
