import { redact } from '@parley/federation/events';
import { canSee, type MembershipChange } from '@parley/federation/room';
import { type HistoryVisibility, type Membership, REDACTION_KEEPS, type RoomEvent } from '@parley/schemas';

/**
 * History visibility applied to servers (issue 10, L7). A server receives a room's chain
 * whole (it must verify every link), but an event none of its users could ever see under the
 * room's history visibility is sent in its redacted form: the event ID and the origin's
 * signature cover the redacted form, so the chain still verifies, and the content stays
 * with the servers whose users may read it.
 *
 * A server "is" what its most-privileged user is at each seq: joined if any of its users is
 * joined, else invited if any is invited, else out. The rules are then exactly canSee's.
 */
export function serverMembershipLog(rows: ReadonlyArray<{ user_id: string; seq: number; membership: Membership }>): MembershipChange[] {
  const current = new Map<string, Membership>();
  const log: MembershipChange[] = [];
  for (const row of rows) {
    current.set(row.user_id, row.membership);
    const values = [...current.values()];
    const membership: Membership = values.includes('join') ? 'join' : values.includes('invite') ? 'invite' : 'leave';
    if (log.at(-1)?.membership !== membership) log.push({ seq: row.seq, membership });
  }
  return log;
}

/**
 * Whether an event may go to a server only redacted. State events always go whole (the
 * server needs the room state to verify and to serve current state to its users), and so do
 * redactions and the types whose content redaction keeps whole (MLS handshakes, encryption).
 */
export function withheldFrom(log: readonly MembershipChange[], event: RoomEvent, seq: number, visibility: string): boolean {
  if (event.state_key !== undefined || event.type === 'room.redaction') return false;
  if (Object.hasOwn(REDACTION_KEEPS, event.type) && REDACTION_KEEPS[event.type] === 'all') return false;
  const v = (['world_readable', 'shared', 'invited', 'joined'].includes(visibility) ? visibility : 'shared') as HistoryVisibility;
  return !canSee(log, seq, v);
}

/** The event as a server may receive it. */
export function eventForServer(log: readonly MembershipChange[], event: RoomEvent, seq: number, visibility: string): RoomEvent {
  return withheldFrom(log, event, seq, visibility) ? redact(event) : event;
}
