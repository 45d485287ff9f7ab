import { readFileSync } from 'node:fs';
import type { HistoryVisibility, RoomEvent } from '@parley/schemas';
import { describe, expect, it } from 'vitest';
import { type AuthContext, authorize, canSee, type MembershipChange } from '../../src/room/index.js';
import { buildState, toEvent } from './helpers.js';

// Table-driven auth rules: one JSON file per rule family under test/vectors/auth/, each case
// run as its own test so a failure names the rule and the case.

interface AuthCase {
  name: string;
  state: Partial<RoomEvent>[];
  event: Partial<RoomEvent>;
  ctx?: AuthContext;
  expect: 'allow' | 'refuse';
  reason_contains?: string;
}
interface VisibilityCase {
  name: string;
  log: MembershipChange[];
  event_seq: number;
  visibility: HistoryVisibility;
  expect: 'allow' | 'refuse';
}

const AUTH_FILES = ['create', 'membership', 'roles', 'state', 'messages', 'redaction', 'mls'];

function load<T>(file: string): T[] {
  const url = new URL(`../vectors/auth/${file}.json`, import.meta.url);
  return (JSON.parse(readFileSync(url, 'utf8')) as { cases: T[] }).cases;
}

describe.each(AUTH_FILES)('auth vectors: %s.json', (file) => {
  const cases = load<AuthCase>(file);

  it.each(cases)('$name', (c) => {
    const state = buildState(c.state);
    const result = authorize(state, toEvent(c.event, c.state.length + 1), c.ctx);
    if (c.expect === 'allow') {
      expect(result).toEqual({ ok: true });
    } else {
      expect(result.ok).toBe(false);
      if (!result.ok && c.reason_contains !== undefined) expect(result.reason).toContain(c.reason_contains);
    }
  });

  it('has unique names and both outcomes', () => {
    expect(new Set(cases.map((c) => c.name)).size).toBe(cases.length);
    expect(cases.some((c) => c.expect === 'allow')).toBe(true);
    expect(cases.some((c) => c.expect === 'refuse')).toBe(true);
    // A refusal without an expected reason could pass for the wrong rule.
    expect(cases.filter((c) => c.expect === 'refuse' && !c.reason_contains).map((c) => c.name)).toEqual([]);
  });
});

describe('visibility vectors: visibility.json', () => {
  const cases = load<VisibilityCase>('visibility');

  it.each(cases)('$name', (c) => {
    expect(canSee(c.log, c.event_seq, c.visibility)).toBe(c.expect === 'allow');
  });

  it('covers every visibility with both outcomes', () => {
    for (const visibility of ['shared', 'invited', 'joined']) {
      const outcomes = new Set(cases.filter((c) => c.visibility === visibility).map((c) => c.expect));
      expect(outcomes, visibility).toEqual(new Set(['allow', 'refuse']));
    }
  });
});
