/**
 * What a participant may spend fetching missing history from a room's host. A host decides
 * what it answers, so every loop it drives needs a bound it cannot move: per inbound
 * transaction (pages, bytes, time), and per room (one backfill at a time, a page rate, and a
 * pause after a host answered a backfill badly). The host may be honest and slow; then the
 * entries not fetched now are fetched when its next push shows the gap again.
 */

export interface BackfillLimits {
  /** Backfill pages one inbound transaction may fetch, over all its rooms. */
  pages: number;
  /** Response bytes those pages may total. */
  bytes: number;
  /** Wall time one transaction may spend on backfill (the sender gives up after 30 s). */
  ms: number;
}

export const TRANSACTION_BACKFILL: Readonly<BackfillLimits> = Object.freeze({ pages: 10, bytes: 32 * 1024 * 1024, ms: 20_000 });

/** Entries asked for per backfill page, and the most one page may weigh. */
export const BACKFILL_PAGE = 500;
export const BACKFILL_PAGE_BYTES = 8 * 1024 * 1024;

/** Per room: a burst of pages, refilled at a steady rate; after a bad answer, no backfill for a while. */
export const ROOM_BACKFILL = Object.freeze({ burst: 20, perMinute: 10, pauseAfterFailureMs: 60_000 });

const MAX_TRACKED_ROOMS = 10_000;

/** One inbound transaction's backfill allowance. */
export class BackfillBudget {
  private pages: number;
  private bytes: number;
  private readonly deadline: number;

  constructor(
    limits: BackfillLimits,
    private readonly now: () => number,
  ) {
    this.pages = limits.pages;
    this.bytes = limits.bytes;
    this.deadline = now() + limits.ms;
  }

  /** Why no further page may be fetched, or null. */
  spent(): string | null {
    if (this.pages <= 0) return 'this transaction used its backfill pages';
    if (this.bytes <= 0) return 'this transaction used its backfill bytes';
    if (this.timeLeft() <= 0) return 'this transaction used its backfill time';
    return null;
  }

  /** A page is about to be fetched: its byte cap and deadline. */
  takePage(): { maxBytes: number; timeoutMs: number } {
    this.pages -= 1;
    return { maxBytes: Math.max(1, Math.min(BACKFILL_PAGE_BYTES, this.bytes)), timeoutMs: Math.max(1, Math.min(30_000, this.timeLeft())) };
  }

  charge(bytes: number): void {
    this.bytes -= bytes;
  }

  timeLeft(): number {
    return this.deadline - this.now();
  }
}

/** Per-room bounds that hold across transactions. */
export class RoomBackfillGate {
  private readonly inFlight = new Set<string>();
  private readonly buckets = new Map<string, { tokens: number; updated: number }>();
  private readonly pausedUntil = new Map<string, number>();

  constructor(private readonly now: () => number) {}

  /** Takes the room for one backfill: null when allowed, otherwise why not. */
  enter(roomId: string): string | null {
    if (this.inFlight.has(roomId)) return 'a backfill of this room is already running';
    const until = this.pausedUntil.get(roomId);
    if (until !== undefined && until > this.now())
      return `the host answered a backfill badly; next attempt in ${Math.ceil((until - this.now()) / 1000)} s`;
    this.pausedUntil.delete(roomId);
    this.inFlight.add(roomId);
    return null;
  }

  leave(roomId: string, failed: boolean): void {
    this.inFlight.delete(roomId);
    if (failed) {
      this.pausedUntil.set(roomId, this.now() + ROOM_BACKFILL.pauseAfterFailureMs);
      trim(this.pausedUntil);
    }
  }

  /** One page of this room's rate; false when the room is out of pages for now. */
  takePage(roomId: string): boolean {
    const now = this.now();
    const b = this.buckets.get(roomId) ?? { tokens: ROOM_BACKFILL.burst, updated: now };
    const tokens = Math.min(ROOM_BACKFILL.burst, b.tokens + ((now - b.updated) * ROOM_BACKFILL.perMinute) / 60_000);
    this.buckets.delete(roomId);
    this.buckets.set(roomId, { tokens: tokens >= 1 ? tokens - 1 : tokens, updated: now });
    trim(this.buckets);
    return tokens >= 1;
  }
}

// Maps keep insertion order: the oldest entries go first.
function trim(map: Map<string, unknown>): void {
  while (map.size > MAX_TRACKED_ROOMS) map.delete(map.keys().next().value as string);
}
