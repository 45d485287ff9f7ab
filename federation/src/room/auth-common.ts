import type { PermissionName } from '@parley/schemas';
import { can } from './permissions.js';
import { membershipOf, type StateMap } from './state.js';

/** The verdict of the auth rules; `reason` is a sentence naming the rule that refused. */
export type AuthResult = { ok: true } | { ok: false; reason: string; code?: string };

/** Facts about other events that the caller looks up, since the rules never do I/O. */
export interface AuthContext {
  /** Sender of the event a `room.redaction` targets, when the caller knows it. */
  redactedEventSender?: string;
  /** The room's MLS epoch before this event (room.mls.*), null when unknown; see auth-mls.ts. */
  mlsEpoch?: number | null;
}

export const ALLOW: AuthResult = Object.freeze({ ok: true });

export function refuse(reason: string): AuthResult {
  return { ok: false, reason };
}

/** Most rules start here: the sender must be in the room and hold each named permission. */
export function requireJoinedWith(state: StateMap, sender: string, ...permissions: PermissionName[]): AuthResult {
  if (membershipOf(state, sender) !== 'join') return refuse('sender is not joined to the room');
  for (const permission of permissions) {
    if (!can(state, sender, permission)) return refuse(`sender lacks ${permission}`);
  }
  return ALLOW;
}

/** The server part of a room or user ID: everything after the first ':'. */
export function serverPart(id: string): string {
  return id.slice(id.indexOf(':') + 1);
}
