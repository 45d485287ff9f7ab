import { describe, expect, it } from 'vitest';
import { BACKFILL_PAGE_BYTES, BackfillBudget, ROOM_BACKFILL, RoomBackfillGate } from '../src/federation/backfill-limits.js';

describe('backfill limits (H2)', () => {
  it('a transaction budget runs out of pages, bytes or time, whichever comes first', () => {
    let now = 0;
    const pages = new BackfillBudget({ pages: 2, bytes: 1e9, ms: 1e9 }, () => now);
    pages.takePage();
    expect(pages.spent()).toBeNull();
    pages.takePage();
    expect(pages.spent()).toMatch(/pages/);

    const bytes = new BackfillBudget({ pages: 100, bytes: 10 * 1024 * 1024, ms: 1e9 }, () => now);
    expect(bytes.takePage().maxBytes).toBe(BACKFILL_PAGE_BYTES);
    bytes.charge(BACKFILL_PAGE_BYTES);
    // The next page may weigh only what is left of the budget.
    expect(bytes.takePage().maxBytes).toBe(10 * 1024 * 1024 - BACKFILL_PAGE_BYTES);
    bytes.charge(10 * 1024 * 1024 - BACKFILL_PAGE_BYTES);
    expect(bytes.spent()).toMatch(/bytes/);

    const time = new BackfillBudget({ pages: 100, bytes: 1e9, ms: 20_000 }, () => now);
    now = 15_000;
    expect(time.takePage().timeoutMs).toBe(5_000);
    now = 20_000;
    expect(time.spent()).toMatch(/time/);
  });

  it('a room runs one backfill at a time, at its page rate, and pauses after a bad answer', () => {
    let now = 0;
    const gate = new RoomBackfillGate(() => now);
    expect(gate.enter('!a:x')).toBeNull();
    expect(gate.enter('!a:x')).toMatch(/already running/);
    expect(gate.enter('!b:x')).toBeNull();
    let taken = 0;
    while (gate.takePage('!a:x')) taken++;
    expect(taken).toBe(ROOM_BACKFILL.burst);
    now += 60_000 / ROOM_BACKFILL.perMinute;
    expect(gate.takePage('!a:x')).toBe(true);
    expect(gate.takePage('!a:x')).toBe(false);
    gate.leave('!a:x', true);
    expect(gate.enter('!a:x')).toMatch(/answered a backfill badly/);
    now += ROOM_BACKFILL.pauseAfterFailureMs;
    expect(gate.enter('!a:x')).toBeNull();
  });
});
