import type { MembershipChange } from '@parley/federation/room';

/** Seq ranges, inclusive; `to` is Infinity for "and everything after". */
export type SeqRange = readonly [from: number, to: number];

/**
 * What `canSee` (federation/room/visibility.ts) allows one viewer in one room, as seq ranges
 * per history visibility, so a query can filter in the database and page exactly (a filter
 * after LIMIT leaves short pages and a `next` that hints at hidden matches).
 *
 * - world_readable: everything;
 * - shared: seq ≤ `sharedUpTo` (0 when never joined, Infinity while joined);
 * - invited / joined: the stretches where the viewer's membership was invite-or-join / join.
 */
export interface VisibleRanges {
  sharedUpTo: number;
  invited: SeqRange[];
  joined: SeqRange[];
}

export function visibleRanges(log: readonly MembershipChange[]): VisibleRanges {
  return {
    sharedUpTo: log.some((c) => c.membership === 'join') ? lastJoinedSeq(log) : 0,
    invited: stretches(log, (m) => m === 'invite' || m === 'join'),
    joined: stretches(log, (m) => m === 'join'),
  };
}

// Each change holds from its own seq up to the seq before the next change.
function stretches(log: readonly MembershipChange[], holds: (m: MembershipChange['membership']) => boolean): SeqRange[] {
  const out: Array<[number, number]> = [];
  for (let i = 0; i < log.length; i++) {
    const change = log[i] as MembershipChange;
    if (!holds(change.membership)) continue;
    const next = log[i + 1];
    const to = next === undefined ? Number.POSITIVE_INFINITY : next.seq - 1;
    if (to < change.seq) continue;
    const last = out.at(-1);
    if (last && last[1] + 1 >= change.seq) last[1] = Math.max(last[1], to);
    else out.push([change.seq, to]);
  }
  return out;
}

// As canSee: where the viewer last stopped being joined (that event included); Infinity while joined.
function lastJoinedSeq(log: readonly MembershipChange[]): number {
  if (log.at(-1)?.membership === 'join') return Number.POSITIVE_INFINITY;
  for (let i = log.length - 1; i > 0; i--) {
    if ((log[i - 1] as MembershipChange).membership === 'join' && (log[i] as MembershipChange).membership !== 'join')
      return (log[i] as MembershipChange).seq;
  }
  return 0;
}
