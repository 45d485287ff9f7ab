import { ROOM_ID_PATTERN, type RoomEvent } from '@parley/schemas';
import { ALLOW, type AuthResult, refuse, requireJoinedWith, serverPart } from './auth-common.js';
import { sameJson } from './json.js';
import { createContent, getState, isHistoryVisibility, isJoinRule, type StateMap } from './state.js';

// Room-wide settings: exactly one per room, so their state_key is ''. Anything else would
// be a second, ignored copy that clients could mistake for the real one.
const ROOM_SETTINGS = new Set([
  'room.name',
  'room.topic',
  'room.avatar',
  'room.canonical_alias',
  'room.join_rules',
  'room.history_visibility',
  'room.encryption',
  'room.pinned',
]);
const roomIdRe = new RegExp(ROOM_ID_PATTERN);

/**
 * State events other than create, member and roles: room settings, space children and
 * custom state. Changing the room needs MANAGE_ROOM; pins are message moderation, so they
 * need MANAGE_MESSAGES.
 */
export function authorizeOtherState(state: StateMap, event: RoomEvent): AuthResult {
  const { type, content } = event;
  const key = event.state_key ?? '';
  if (ROOM_SETTINGS.has(type) && key !== '') return refuse(`${type} requires state_key ''`);
  const senderOk = requireJoinedWith(state, event.sender, type === 'room.pinned' ? 'MANAGE_MESSAGES' : 'MANAGE_ROOM');
  if (!senderOk.ok) return senderOk;

  switch (type) {
    case 'room.join_rules':
      return isJoinRule(content.join_rule) ? ALLOW : refuse('room.join_rules content.join_rule must be public, invite or knock');
    case 'room.history_visibility':
      return isHistoryVisibility(content.history_visibility)
        ? ALLOW
        : refuse('room.history_visibility content.history_visibility must be world_readable, shared, invited or joined');
    case 'room.encryption':
      return authorizeEncryption(state, event);
    case 'space.child':
      return authorizeSpaceChild(state, event);
    default:
      return ALLOW;
  }
}

// Encryption is one-way: turning it off (or weakening the algorithm) would let a server
// with MANAGE_ROOM make clients send plaintext again. Re-sending identical content is harmless.
function authorizeEncryption(state: StateMap, event: RoomEvent): AuthResult {
  const current = getState(state, 'room.encryption');
  if (current) return sameJson(current.content, event.content) ? ALLOW : refuse('room.encryption cannot be changed or removed once set');
  const { algorithm } = event.content;
  if (typeof algorithm !== 'string' || algorithm === '') return refuse('room.encryption content.algorithm must be a non-empty string');
  return ALLOW;
}

// docs/protocol.md: a space's channels are hosted on the same server as the space.
function authorizeSpaceChild(state: StateMap, event: RoomEvent): AuthResult {
  if (createContent(state)?.kind !== 'space') return refuse('space.child is only allowed in a room of kind space');
  const child = event.state_key ?? '';
  if (!roomIdRe.test(child)) return refuse('space.child state_key must be a room ID');
  if (serverPart(child) !== serverPart(event.room_id)) return refuse('space.child must name a room hosted on the same server as the space');
  return ALLOW;
}
