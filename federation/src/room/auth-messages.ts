import { EVENT_ID_PATTERN, type PermissionName, type RoomEvent } from '@parley/schemas';
import { ALLOW, type AuthContext, type AuthResult, refuse, requireJoinedWith } from './auth-common.js';
import { isPlainObject } from './roles-shape.js';
import type { StateMap } from './state.js';

export const MESSAGE_TYPES: ReadonlySet<string> = new Set(['room.message', 'room.encrypted', 'room.reaction', 'room.redaction']);
const eventIdRe = new RegExp(EVENT_ID_PATTERN);

/**
 * Message-like events (no state_key): the sender must be joined and able to VIEW the room,
 * plus the permission for each thing the event does. Requirements add up: an edit that
 * attaches a file needs SEND and ATTACH.
 */
export function authorizeMessage(state: StateMap, event: RoomEvent, ctx: AuthContext): AuthResult {
  if (event.state_key !== undefined) return refuse(`${event.type} is not a state event and must not carry a state_key`);
  if (event.type === 'room.redaction') return authorizeRedaction(state, event, ctx);
  return requireJoinedWith(state, event.sender, 'VIEW', ...permissionsNeeded(event));
}

function permissionsNeeded(event: RoomEvent): PermissionName[] {
  const { type, content } = event;
  const relation = isPlainObject(content.relates_to) ? content.relates_to.type : undefined;
  const needed = new Set<PermissionName>();
  // Custom message types post into the timeline as much as room.message does.
  if (type !== 'room.reaction') needed.add('SEND');
  if (type === 'room.reaction' || relation === 'annotation') needed.add('REACT');
  if (relation === 'replace') needed.add('SEND');
  // An edit can attach a file through its new content as well as the fallback body.
  if (content.url !== undefined || (isPlainObject(content.new_content) && content.new_content.url !== undefined)) {
    needed.add('ATTACH');
  }
  return [...needed];
}

// Anyone may take back their own event; removing others' is moderation. The caller looks up
// the target's sender, because the rules do no I/O; without it we assume someone else's.
function authorizeRedaction(state: StateMap, event: RoomEvent, ctx: AuthContext): AuthResult {
  const { redacts } = event.content;
  if (typeof redacts !== 'string' || !eventIdRe.test(redacts)) return refuse('room.redaction content.redacts must be an event ID');
  const senderOk = requireJoinedWith(state, event.sender, 'VIEW');
  if (!senderOk.ok) return senderOk;
  if (ctx.redactedEventSender === event.sender) return ALLOW;
  return requireJoinedWith(state, event.sender, 'MANAGE_MESSAGES');
}
