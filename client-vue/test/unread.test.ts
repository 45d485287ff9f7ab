import type { ClientEvent } from '@parley/schemas';
import { describe, expect, it } from 'vitest';
import { firstUnread } from '../src/lib/unread.js';

const me = '@me:hs1.test';
function ev(n: number, sender = '@bob:hs1.test', content: Record<string, unknown> = { body: `m${n}` }): ClientEvent {
  return { event_id: `$${n}`, room_id: '!r:hs1.test', seq: n, type: 'room.message', sender, origin_ts: n, content };
}

describe('first unread', () => {
  it('is the n-th newest message from others, skipping mine and edits', () => {
    const events = [
      ev(1),
      ev(2),
      ev(3, me),
      ev(4),
      ev(5, '@bob:hs1.test', { body: '* x', relates_to: { type: 'replace', event_id: '$4' } }),
      ev(6),
    ];
    expect(firstUnread(events, 2, me)).toEqual({ eventId: '$4', complete: true });
    expect(firstUnread(events, 1, me)).toEqual({ eventId: '$6', complete: true });
    expect(firstUnread(events, 0, me)).toBeNull();
  });

  it('says when the first unread is older than what is loaded', () => {
    expect(firstUnread([ev(1), ev(2)], 5, me)).toEqual({ eventId: '$1', complete: false });
    expect(firstUnread([ev(1, me)], 3, me)).toBeNull();
  });
});
