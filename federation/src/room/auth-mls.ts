import type { RoomEvent } from '@parley/schemas';
import { ALLOW, type AuthContext, type AuthResult, refuse, requireJoinedWith } from './auth-common.js';
import { getState, type StateMap } from './state.js';

/** Message-like types an encrypted room still accepts; everything else would be plaintext. */
export const ENCRYPTED_ROOM_TYPES: ReadonlySet<string> = new Set([
  'room.encrypted',
  'room.mls.commit',
  'room.mls.proposal',
  'room.redaction',
]);
export const MLS_TYPES: ReadonlySet<string> = new Set(['room.mls.commit', 'room.mls.proposal']);

/** Reason codes callers map to protocol errors. */
export const ROOM_ENCRYPTED = 'room_encrypted';
export const MLS_STALE_EPOCH = 'mls_stale_epoch';

const isEpoch = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

export function isEncrypted(state: StateMap): boolean {
  // Any room.encryption, even one stripped by a redaction: encryption is one-way.
  return getState(state, 'room.encryption') !== undefined;
}

/**
 * Once `room.encryption` is set, the room takes no plaintext: of the message-like events
 * only MLS ones (and redactions, which carry no content of their own) are allowed.
 */
export function plaintextInEncryptedRoom(state: StateMap, event: RoomEvent): AuthResult | null {
  if (event.state_key !== undefined || !isEncrypted(state) || ENCRYPTED_ROOM_TYPES.has(event.type)) return null;
  return {
    ok: false,
    reason: `the room is end-to-end encrypted: ${event.type} is not accepted in the clear (send room.encrypted)`,
    code: ROOM_ENCRYPTED,
  };
}

/**
 * `room.mls.commit` and `room.mls.proposal` (docs/protocol.md). The room's MLS epoch E starts at 0
 * when it turns encrypted; the host sequences a commit only when its `epoch` is E, and E then
 * becomes `epoch + 1`. So the first commit the host sequences for an epoch wins and every
 * later one for the same epoch is refused (RFC 9420 §14: the delivery service orders commits).
 * A proposal belongs to the current epoch too and does not advance it.
 *
 * `ctx.mlsEpoch` is E before this event, as the caller tracks it from sequenced commits;
 * `null` or absent when unknown (a server that joined from a state snapshot and has not seen
 * a commit yet): then only the shape and the sender are judged.
 */
export function authorizeMls(state: StateMap, event: RoomEvent, ctx: AuthContext): AuthResult {
  if (event.state_key !== undefined) return refuse(`${event.type} is not a state event and must not carry a state_key`);
  if (!isEncrypted(state)) return refuse(`${event.type} needs an encrypted room (room.encryption)`);
  const { epoch } = event.content;
  const payload = event.type === 'room.mls.commit' ? event.content.commit : event.content.proposal;
  const field = event.type === 'room.mls.commit' ? 'commit' : 'proposal';
  if (!isEpoch(epoch)) return refuse(`${event.type} content.epoch must be a non-negative integer`);
  if (typeof payload !== 'string' || payload === '') return refuse(`${event.type} content.${field} must be a non-empty string`);
  const sender = requireJoinedWith(state, event.sender, 'VIEW');
  if (!sender.ok) return sender;
  const current = ctx.mlsEpoch;
  if (isEpoch(current) && epoch !== current) {
    return {
      ok: false,
      reason: `${event.type} is for epoch ${epoch}, but the room is at epoch ${current}${epoch < current ? ' (another commit won that epoch)' : ''}`,
      code: MLS_STALE_EPOCH,
    };
  }
  return ALLOW;
}

/** The epoch after `event`, given E before it (unknown stays unknown until a commit shows it). */
export function nextMlsEpoch(current: number | null | undefined, event: RoomEvent): number | null {
  if (event.type === 'room.encryption' && event.state_key === '') return isEpoch(current) ? current : 0;
  if (event.type === 'room.mls.commit' && isEpoch(event.content.epoch)) return event.content.epoch + 1;
  return isEpoch(current) ? current : null;
}
