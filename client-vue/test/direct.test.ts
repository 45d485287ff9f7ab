import type { RoomSummary } from '@parley/schemas';
import { describe, expect, it } from 'vitest';
import { buildSidebar, directPartner, lastMessagePreview } from '../src/lib/rooms.js';

function room(id: string, over: Partial<RoomSummary> = {}): RoomSummary {
  return {
    room_id: `!${id}:hs1.test`,
    kind: 'room',
    membership: 'join',
    name: id,
    topic: null,
    avatar_url: null,
    canonical_alias: null,
    joined_members: 1,
    unread_count: 0,
    last_event: null,
    parent: null,
    encrypted: false,
    ...over,
  };
}

describe('direct messages in the sidebar', () => {
  it('lists joined direct rooms apart from rooms; invites stay invites', () => {
    const list = [
      room('a'),
      room('dm1', { is_direct: true, name: null }),
      room('dm2', { is_direct: true, name: null, membership: 'invite' }),
    ];
    const tree = buildSidebar(list);
    expect(tree.directs.map((r) => r.room_id)).toEqual(['!dm1:hs1.test']);
    expect(tree.rooms.map((r) => r.room_id)).toEqual(['!a:hs1.test']);
    expect(tree.invites.map((r) => r.room_id)).toEqual(['!dm2:hs1.test']);
  });

  it('filters direct messages by the label (the other person’s name)', () => {
    const list = [room('dm1', { is_direct: true, name: null }), room('dm2', { is_direct: true, name: null })];
    const labels = new Map([
      ['!dm1:hs1.test', 'Bob Builder'],
      ['!dm2:hs1.test', 'Carol'],
    ]);
    expect(buildSidebar(list, 'builder', labels).directs.map((r) => r.room_id)).toEqual(['!dm1:hs1.test']);
    expect(buildSidebar(list, 'zed', labels).directs).toEqual([]);
  });

  it('names the other person: joined or invited, never me or someone who left', () => {
    const me = '@me:hs1.test';
    expect(
      directPartner(
        [
          { user_id: me, membership: 'join' },
          { user_id: '@bob:hs1.test', membership: 'invite' },
        ],
        me,
      ),
    ).toBe('@bob:hs1.test');
    expect(
      directPartner(
        [
          { user_id: me, membership: 'join' },
          { user_id: '@gone:hs1.test', membership: 'leave' },
        ],
        me,
      ),
    ).toBeNull();
    expect(directPartner(undefined, me)).toBeNull();
  });
});

describe('previews with mentions', () => {
  it('shows mentioned people by name', () => {
    const ev = {
      event_id: '$e',
      room_id: '!r:hs1.test',
      type: 'room.message',
      sender: '@al:hs1.test',
      origin_ts: 1,
      content: { body: 'hi @bob:hs1.test and @zed:hs2.test' },
    };
    expect(lastMessagePreview(ev, '@me:hs1.test', new Map([['@bob:hs1.test', 'Bob B']]))).toBe('al: hi @Bob B and @zed');
  });
});
