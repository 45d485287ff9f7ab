import type { Membership } from '@parley/schemas';
import { describe, expect, it } from 'vitest';
import { canSee, visibleUpTo } from '../../src/room/index.js';

// canSee is driven by test/vectors/auth/visibility.json (auth-vectors.test.ts); these cover
// the paging bound and argument checks.

const log = (...changes: Array<[number, Membership]>) => changes.map(([seq, membership]) => ({ seq, membership }));

describe('visibleUpTo', () => {
  it.each([
    ['never a member', log(), 0],
    ['only knocked', log([2, 'knock']), 0],
    ['joined now', log([5, 'join']), Number.POSITIVE_INFINITY],
    ['invited now', log([5, 'invite']), Number.POSITIVE_INFINITY],
    ['left at 10', log([5, 'join'], [10, 'leave']), 10],
    ['banned at 12', log([5, 'join'], [12, 'ban']), 12],
    ['declined an invite at 4', log([3, 'invite'], [4, 'leave']), 4],
    ['joined twice, left at 30', log([5, 'join'], [10, 'leave'], [20, 'join'], [25, 'join'], [30, 'leave']), 30],
    ['left, then knocked', log([5, 'join'], [10, 'leave'], [15, 'knock']), 10],
  ])('%s', (_name, changes, bound) => {
    expect(visibleUpTo(changes)).toBe(bound);
  });

  it('bounds every visible event under shared, invited and joined', () => {
    const changes = log([3, 'invite'], [5, 'join'], [10, 'leave'], [20, 'join'], [30, 'ban']);
    const bound = visibleUpTo(changes);
    for (const visibility of ['shared', 'invited', 'joined'] as const) {
      for (let seq = bound + 1; seq < bound + 20; seq++) expect(canSee(changes, seq, visibility)).toBe(false);
    }
  });
});

describe('argument checks', () => {
  it.each([
    [null, 1, 'shared'],
    [
      [
        { seq: 2, membership: 'join' },
        { seq: 1, membership: 'leave' },
      ],
      1,
      'shared',
    ],
    [[{ seq: 1, membership: 'lurk' }], 1, 'shared'],
    [[{ seq: '1', membership: 'join' }], 1, 'shared'],
    [[null], 1, 'shared'],
    [[], 0, 'shared'],
    [[], 1.5, 'shared'],
    [[], 1, 'public'],
  ])('canSee(%j, %j, %j) throws TypeError', (changes, seq, visibility) => {
    expect(() => canSee(changes as any, seq as any, visibility as any)).toThrow(TypeError);
  });

  it('visibleUpTo rejects an unsorted log', () => {
    expect(() => visibleUpTo(log([5, 'leave'], [3, 'join']))).toThrow(TypeError);
  });
});
