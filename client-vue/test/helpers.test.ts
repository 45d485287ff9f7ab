import type { RoomSummary } from '@parley/schemas';
import { ParleyApiError } from '@parley/sdk';
import { describe, expect, it } from 'vitest';
import { describeError, isTransient } from '../src/lib/errors.js';
import { homeserverUrl, initials, isRemoteUser, looksJoinable, splitUserId } from '../src/lib/ids.js';
import { buildSidebar, lastMessagePreview, roomName } from '../src/lib/rooms.js';

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

describe('buildSidebar', () => {
  const space = room('space', { kind: 'space', name: 'Team' });
  const list = [
    room('general', { parent: space.room_id, name: 'general' }),
    space,
    room('random', { name: 'Random' }),
    room('invited', { membership: 'invite', name: 'Secret' }),
    room('orphan', { parent: '!other:hs1.test', name: 'Orphan channel' }),
  ];

  it('puts channels under their space, the rest under rooms, and invites apart', () => {
    const tree = buildSidebar(list);
    expect(tree.spaces.map((s) => [s.space.name, s.channels.map((c) => c.name)])).toEqual([['Team', ['general']]]);
    expect(tree.rooms.map((r) => r.name)).toEqual(['Random', 'Orphan channel']);
    expect(tree.invites.map((r) => r.name)).toEqual(['Secret']);
  });

  it('filters case-insensitively, keeping a space whose channel matches', () => {
    const tree = buildSidebar(list, 'GEN');
    expect(tree.spaces.map((s) => s.channels.map((c) => c.name))).toEqual([['general']]);
    expect(tree.rooms).toEqual([]);
    expect(buildSidebar(list, 'team').spaces[0]?.channels.map((c) => c.name)).toEqual(['general']);
  });
});

describe('lastMessagePreview', () => {
  const ev = (content: Record<string, unknown>, sender = '@bob:hs1.test') => ({
    event_id: `$${'a'.repeat(43)}`,
    room_id: '!r:hs1.test',
    type: 'room.message',
    sender,
    origin_ts: 0,
    content,
  });
  it('names the sender and shows what an edit says now', () => {
    expect(lastMessagePreview(ev({ body: 'hi' }), '@me:hs1.test')).toBe('bob: hi');
    expect(lastMessagePreview(ev({ body: 'hi' }, '@me:hs1.test'), '@me:hs1.test')).toBe('You: hi');
    expect(
      lastMessagePreview(
        ev({ body: '* fixed', new_content: { body: 'fixed' }, relates_to: { type: 'replace', event_id: 'x' } }),
        '@me:hs1.test',
      ),
    ).toBe('bob: fixed');
    expect(lastMessagePreview(ev({ body: 'x.png', msgtype: 'image' }), '@me:hs1.test')).toBe('bob sent an image');
    expect(lastMessagePreview(null, '@me:hs1.test')).toBe('');
  });
  it('prefers name, then alias, then ID', () => {
    expect(roomName(room('a', { name: null, canonical_alias: '#a:hs1.test' }))).toBe('#a:hs1.test');
    expect(roomName(room('a', { name: null }))).toBe('!a:hs1.test');
  });
});

describe('ids', () => {
  it('turns what people type into homeserver URLs', () => {
    expect(homeserverUrl('chat.example.org')).toBe('https://chat.example.org');
    expect(homeserverUrl('localhost:8008')).toBe('http://localhost:8008');
    expect(homeserverUrl('http://127.0.0.1:8008/')).toBe('http://127.0.0.1:8008');
    expect(homeserverUrl('https://example.org/parley/')).toBe('https://example.org/parley');
    expect(() => homeserverUrl('')).toThrow(TypeError);
    expect(() => homeserverUrl('https://x.example/?a=1')).toThrow(TypeError);
  });
  it('splits user IDs and tells remote users apart', () => {
    expect(splitUserId('@alice:hs1.test:8448')).toEqual({ localpart: 'alice', server: 'hs1.test:8448' });
    expect(splitUserId('alice')).toBeNull();
    expect(isRemoteUser('@a:hs2.test', 'hs1.test')).toBe(true);
    expect(isRemoteUser('@a:hs1.test', 'hs1.test')).toBe(false);
  });
  it('checks joinable addresses and makes initials', () => {
    expect(looksJoinable('#general:hs1.test')).toBe(true);
    expect(looksJoinable('!abc:hs1.test')).toBe(true);
    expect(looksJoinable('general')).toBe(false);
    expect(initials('Project Falcon')).toBe('PF');
    expect(initials('@alice:hs1')).toBe('A');
  });
});

describe('describeError', () => {
  it('gives a sentence for each kind of failure', () => {
    expect(describeError(new ParleyApiError({ status: 403, code: 'PARLEY_INVALID_CREDENTIALS', message: 'x' }))).toBe(
      'Wrong username or password.',
    );
    expect(describeError(new ParleyApiError({ status: 429, code: 'PARLEY_RATE_LIMITED', message: 'x', retryAfterMs: 2500 }))).toBe(
      'Slow down: try again in 3 seconds.',
    );
    expect(
      describeError(
        new ParleyApiError({ status: 400, code: 'PARLEY_INVALID_PARAM', message: 'username must match pattern', field: 'username' }),
      ),
    ).toBe('Username must match pattern.');
    expect(describeError(new ParleyApiError({ status: 0, code: 'PARLEY_NETWORK', message: 'fetch failed' }))).toMatch(/Cannot reach/);
    expect(describeError(new ParleyApiError({ status: 418, code: 'PARLEY_SOMETHING_NEW', message: 'a newer server said so' }))).toBe(
      'A newer server said so',
    );
    expect(describeError('weird')).toBe('Something went wrong.');
  });
  it('knows what is worth retrying', () => {
    expect(isTransient(new ParleyApiError({ status: 0, code: 'PARLEY_NETWORK', message: '' }))).toBe(true);
    expect(isTransient(new ParleyApiError({ status: 503, code: 'PARLEY_UNAVAILABLE', message: '' }))).toBe(true);
    expect(isTransient(new ParleyApiError({ status: 403, code: 'PARLEY_FORBIDDEN', message: '' }))).toBe(false);
  });
});
