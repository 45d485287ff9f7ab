import { parseUserId, ROOM_ID_PATTERN, type RoomEvent } from '@parley/schemas';
import { ALLOW, type AuthContext, type AuthResult, refuse, serverPart } from './auth-common.js';
import { authorizeMember } from './auth-member.js';
import { authorizeMessage, MESSAGE_TYPES } from './auth-messages.js';
import { authorizeMls, MLS_TYPES, plaintextInEncryptedRoom } from './auth-mls.js';
import { authorizeRoles } from './auth-roles.js';
import { authorizeOtherState } from './auth-state.js';
import { isPlainObject } from './roles-shape.js';
import { getState, type StateMap } from './state.js';

export type { AuthContext, AuthResult } from './auth-common.js';

// Well-known state types; a custom type is a state event exactly when it has a state_key.
const STATE_TYPES: ReadonlySet<string> = new Set([
  'room.create',
  'room.member',
  'room.roles',
  'room.name',
  'room.topic',
  // Without these two, a room.avatar or room.canonical_alias with no state_key passed as a
  // message needing only SEND, and clients rendered it as a room change (issue 10, L8).
  'room.avatar',
  'room.canonical_alias',
  'room.join_rules',
  'room.history_visibility',
  'room.encryption',
  'room.pinned',
  'space.child',
]);
const roomIdRe = new RegExp(ROOM_ID_PATTERN);

/**
 * The room auth rules (docs/protocol.md): may `event` be appended to a room whose current state is
 * `state`? The host runs this before sequencing and every participant re-runs it while
 * verifying the chain, so it is pure and deterministic. Hostile events are refused with a
 * reason, never thrown on; only a caller bug (state not a Map) throws.
 *
 * Signatures, hashes and size caps are checked before this, by the verifier.
 */
export function authorize(state: StateMap, event: RoomEvent, ctx: AuthContext = {}): AuthResult {
  if (!(state instanceof Map)) throw new TypeError('authorize: state must be a Map');
  const malformed = shapeProblem(event);
  if (malformed) return refuse(malformed);
  if (event.type === 'room.create') return authorizeCreate(state, event);

  const create = getState(state, 'room.create');
  if (!create) return refuse('the first event of a room must be room.create');
  if (event.room_id !== create.room_id) return refuse('event room_id does not match the room');

  const isState = event.state_key !== undefined;
  const plaintext = plaintextInEncryptedRoom(state, event);
  if (plaintext) return plaintext;
  if (MLS_TYPES.has(event.type)) return authorizeMls(state, event, ctx ?? {});
  if (MESSAGE_TYPES.has(event.type) || (!isState && !STATE_TYPES.has(event.type))) return authorizeMessage(state, event, ctx ?? {});
  if (!isState) return refuse(`${event.type} is a state event and needs a state_key`);
  if (event.type === 'room.member') return authorizeMember(state, event);
  if (event.type === 'room.roles') return authorizeRoles(state, event);
  return authorizeOtherState(state, event);
}

// Just enough shape for the rules to read the event safely; the full schema check is the
// caller's. A server may only speak for its own users, so origin must be the sender's server.
function shapeProblem(event: RoomEvent): string | null {
  if (!isPlainObject(event)) return 'event must be an object';
  if (typeof event.type !== 'string' || event.type === '') return 'event type must be a non-empty string';
  if (typeof event.room_id !== 'string' || !roomIdRe.test(event.room_id)) return 'event room_id must be a valid room ID';
  const sender = parseUserId(event.sender);
  if (sender === null) return 'event sender must be a valid user ID';
  if (event.origin !== sender.server) return "event origin must be the sender's server";
  if (event.state_key !== undefined && typeof event.state_key !== 'string') return 'event state_key must be a string when present';
  if (!isPlainObject(event.content)) return 'event content must be an object';
  return null;
}

// The room's host is named in its ID and only that server's users can create it, so no
// other server can mint a room that claims to live elsewhere.
function authorizeCreate(state: StateMap, event: RoomEvent): AuthResult {
  if (getState(state, 'room.create') || state.size > 0) return refuse('room.create is only allowed as the first event of a room');
  if (event.state_key !== '') return refuse("room.create requires state_key ''");
  const { creator, kind, version } = event.content;
  if (creator !== event.sender) return refuse('room.create content.creator must be the sender');
  if (kind !== 'room' && kind !== 'space') return refuse("room.create content.kind must be 'room' or 'space'");
  if (version !== 1) return refuse('room.create content.version must be 1');
  if (serverPart(event.sender) !== serverPart(event.room_id)) return refuse("room.create sender's server must be the room's host");
  return ALLOW;
}
