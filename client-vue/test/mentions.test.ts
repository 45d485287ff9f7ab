import type { ClientEvent, Member } from '@parley/schemas';
import { describe, expect, it } from 'vitest';
import { parseInline } from '../src/lib/markdown.js';
import { mentionCandidates, mentionQuery, mentionsIn, mentionsMe, replaceRange } from '../src/lib/mentions.js';
import { notificationText, shouldNotify } from '../src/lib/notify.js';

const me = '@me:hs1.test';
function msg(body: string, over: Partial<ClientEvent> = {}): ClientEvent {
  return {
    event_id: '$e',
    room_id: '!r:hs1.test',
    type: 'room.message',
    sender: '@bob:hs1.test',
    origin_ts: 1,
    content: { body, msgtype: 'text' },
    ...over,
  };
}
function member(user_id: string, displayname: string | null, membership: Member['membership'] = 'join'): Member {
  return { user_id, displayname, membership, avatar_url: null, roles: [] };
}

describe('mentions', () => {
  it('finds user IDs in text, not inside words or emails', () => {
    expect([...mentionsIn('hi @me:hs1.test and @bob:hs2.test:8448, ok?')]).toEqual(['@me:hs1.test', '@bob:hs2.test:8448']);
    expect(mentionsIn('mail x@me:hs1.test').size).toBe(0);
    expect([...mentionsIn('(@me:hs1.test).')]).toEqual(['@me:hs1.test']);
    expect(mentionsIn('@Me:hs1.test').size).toBe(0);
  });

  it('counts a message as mentioning me only from others, not edits, not redacted', () => {
    expect(mentionsMe(msg('hey @me:hs1.test'), me)).toBe(true);
    expect(mentionsMe(msg('hey @me:hs1.test.'), me)).toBe(true);
    expect(mentionsMe(msg('hey @me:hs1.test', { sender: me }), me)).toBe(false);
    expect(mentionsMe(msg('hey @mex:hs1.test'), me)).toBe(false);
    expect(
      mentionsMe(msg('* @me:hs1.test', { content: { body: '* @me:hs1.test', relates_to: { type: 'replace', event_id: '$x' } } }), me),
    ).toBe(false);
    expect(mentionsMe(msg('hey @me:hs1.test', { unsigned: { redacted_because: {} } }), me)).toBe(false);
    // An edit that adds the mention counts on the message it edits.
    expect(mentionsMe(msg('hey', { unsigned: { edit: { content: { body: 'hey @me:hs1.test' } } } }), me)).toBe(true);
  });

  it('parses mentions into pills and leaves look-alikes as text', () => {
    expect(parseInline('hi @bob:hs1.test!')).toEqual([
      { t: 'text', v: 'hi ' },
      { t: 'mention', id: '@bob:hs1.test' },
      { t: 'text', v: '!' },
    ]);
    expect(parseInline('a@bob:hs1.test')).toEqual([{ t: 'text', v: 'a@bob:hs1.test' }]);
    expect(parseInline('`@bob:hs1.test`')).toEqual([{ t: 'code', v: '@bob:hs1.test' }]);
    expect(parseInline('@<b>:x')).toEqual([{ t: 'text', v: '@<b>:x' }]);
  });

  it('reads the @query before the caret', () => {
    expect(mentionQuery('hello @bo', 9)).toEqual({ start: 6, query: 'bo' });
    expect(mentionQuery('@', 1)).toEqual({ start: 0, query: '' });
    expect(mentionQuery('mail a@bo', 9)).toBeNull();
    expect(mentionQuery('hello @bo there', 15)).toBeNull();
  });

  it('offers members by name or ID, prefix first, joined before invited, never me', () => {
    const members = [
      member(me, 'Me'),
      member('@bob:hs1.test', 'Bob Builder'),
      member('@rob:hs1.test', 'Robert'),
      member('@bobby:hs1.test', null, 'invite'),
      member('@gone:hs1.test', 'Bobo', 'leave'),
    ];
    const names = new Map<string, string | null>(members.map((m) => [m.user_id, m.displayname]));
    expect(mentionCandidates(members, 'bo', names, me).map((m) => m.user_id)).toEqual(['@bob:hs1.test', '@bobby:hs1.test']);
    expect(mentionCandidates(members, 'ert', names, me).map((m) => m.user_id)).toEqual(['@rob:hs1.test']);
    expect(mentionCandidates(members, '', names, me, 2)).toHaveLength(2);
    expect(mentionCandidates(members, 'bob:hs1.test', names, me)).toEqual([]);
  });

  it('inserts the user ID and a space in place of the query', () => {
    expect(replaceRange('hi @bo and', 3, 6, '@bob:hs1.test ')).toEqual({ text: 'hi @bob:hs1.test  and', caret: 17 });
  });
});

describe('notifications', () => {
  const base = { me, direct: false, watching: false, enabled: true, permission: 'granted' as const };
  it('notifies for mentions and DMs only while I look elsewhere, with permission', () => {
    expect(shouldNotify(msg('hi @me:hs1.test'), base)).toBe(true);
    expect(shouldNotify(msg('hi all'), base)).toBe(false);
    expect(shouldNotify(msg('hi all'), { ...base, direct: true })).toBe(true);
    expect(shouldNotify(msg('hi @me:hs1.test'), { ...base, watching: true })).toBe(false);
    expect(shouldNotify(msg('hi @me:hs1.test'), { ...base, enabled: false })).toBe(false);
    expect(shouldNotify(msg('hi @me:hs1.test'), { ...base, permission: 'default' })).toBe(false);
    expect(shouldNotify(msg('hi', { sender: me }), { ...base, direct: true })).toBe(false);
    expect(
      shouldNotify(
        { ...msg(''), type: 'room.reaction', content: { relates_to: { type: 'annotation', event_id: '$x', key: '👍' } } },
        { ...base, direct: true },
      ),
    ).toBe(false);
  });

  it('writes who, where and the text with names for mentions', () => {
    const names = new Map([
      ['@bob:hs1.test', 'Bob'],
      [me, 'Me Myself'],
    ]);
    expect(notificationText(msg('ping @me:hs1.test'), 'Ops', false, names)).toEqual({ title: 'Bob in Ops', body: 'ping @Me Myself' });
    expect(notificationText(msg('hello'), 'Bob', true, names)).toEqual({ title: 'Bob', body: 'hello' });
    expect(notificationText(msg('x', { content: { body: 'a.png', msgtype: 'image' } }), 'Ops', false, names).body).toBe('sent an image');
  });
});
