import type { HistoryVisibility, Membership } from '@parley/schemas';
import { isHistoryVisibility, isMembership } from './state.js';

/** One membership change of the viewer: the `seq` of their `room.member` event and its value. */
export interface MembershipChange {
  seq: number;
  membership: Membership;
}

/**
 * May a viewer with this membership log see the event at `eventSeq`, given the
 * history_visibility in force at that event? `log` is sorted by seq.
 *
 * - world_readable: anyone.
 * - shared: anyone who has been joined at some point sees everything up to where they last
 *   stopped being joined (their own leave or ban event included), or all of it while joined.
 * - invited / joined: the membership at the event (the latest change at or before it; the
 *   membership event itself counts) must be invite or join / join.
 */
export function canSee(log: readonly MembershipChange[], eventSeq: number, visibility: HistoryVisibility): boolean {
  checkLog(log);
  if (!Number.isInteger(eventSeq) || eventSeq < 1) throw new TypeError('canSee: eventSeq must be a positive integer');
  if (!isHistoryVisibility(visibility)) throw new TypeError('canSee: visibility must be a history visibility');

  switch (visibility) {
    case 'world_readable':
      return true;
    case 'shared':
      return log.some((change) => change.membership === 'join') && eventSeq <= lastJoinedSeq(log);
    case 'invited': {
      const at = membershipAt(log, eventSeq);
      return at === 'invite' || at === 'join';
    }
    case 'joined':
      return membershipAt(log, eventSeq) === 'join';
  }
}

/**
 * The highest seq a viewer who is not joined now could see (under any visibility but
 * world_readable), so paging can stop there instead of testing every later event:
 * +Infinity while joined or invited (later events may still be visible), 0 if the viewer was
 * never joined or invited. It is an upper bound; each event still goes through `canSee`.
 */
export function visibleUpTo(log: readonly MembershipChange[]): number {
  checkLog(log);
  let bound = 0;
  for (let i = 0; i < log.length; i++) {
    const change = log[i]!;
    if (change.membership !== 'join' && change.membership !== 'invite') continue;
    const next = log[i + 1];
    // The change that ends this stretch is the last event it may cover (shared counts it).
    bound = next === undefined ? Number.POSITIVE_INFINITY : next.seq;
  }
  return bound;
}

function membershipAt(log: readonly MembershipChange[], seq: number): Membership {
  let membership: Membership = 'leave';
  for (const change of log) {
    if (change.seq > seq) break;
    membership = change.membership;
  }
  return membership;
}

// Seq at which the viewer last stopped being joined; +Infinity while still joined.
function lastJoinedSeq(log: readonly MembershipChange[]): number {
  const last = log.at(-1);
  if (last?.membership === 'join') return Number.POSITIVE_INFINITY;
  for (let i = log.length - 1; i > 0; i--) {
    if (log[i - 1]!.membership === 'join' && log[i]!.membership !== 'join') return log[i]!.seq;
  }
  return 0;
}

// A log out of order would silently answer for the wrong membership, so refuse it loudly.
function checkLog(log: readonly MembershipChange[]): void {
  if (!Array.isArray(log)) throw new TypeError('log must be an array of { seq, membership }');
  let previous = 0;
  for (const change of log) {
    if (change === null || typeof change !== 'object' || !Number.isInteger(change.seq) || !isMembership(change.membership)) {
      throw new TypeError('log entries must be { seq: integer, membership: Membership }');
    }
    if (change.seq < previous) throw new TypeError('log must be sorted by seq');
    previous = change.seq;
  }
}
