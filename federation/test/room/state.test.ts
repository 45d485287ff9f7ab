import { describe, expect, it } from 'vitest';
import {
  applyEvent,
  authorize,
  createContent,
  getState,
  historyVisibility,
  joinRule,
  membershipOf,
  rolesContent,
  type StateMap,
  stateKey,
} from '../../src/room/index.js';
import { buildState, toEvent } from './helpers.js';

const ALICE = '@alice:a.example';
const create = { type: 'room.create', state_key: '', sender: ALICE, content: { creator: ALICE, kind: 'space', version: 1 } };
const join = { type: 'room.member', state_key: ALICE, sender: ALICE, content: { membership: 'join' } };

describe('state accessors', () => {
  it('keys state by type and state_key', () => {
    expect(stateKey('room.member', ALICE)).toBe(`room.member\u0000${ALICE}`);
    expect(() => stateKey(1 as any, '')).toThrow(TypeError);
    expect(() => stateKey('room.name', undefined as any)).toThrow(TypeError);
  });

  it('reads the current state', () => {
    const state = buildState([create, join]);
    expect(getState(state, 'room.create')?.sender).toBe(ALICE);
    expect(createContent(state)).toEqual({ creator: ALICE, kind: 'space', version: 1 });
    expect(membershipOf(state, ALICE)).toBe('join');
  });

  it('falls back to the safe defaults', () => {
    const state = buildState([create]);
    expect(membershipOf(state, '@nobody:x.example')).toBe('leave');
    expect(joinRule(state)).toBe('invite');
    expect(historyVisibility(state)).toBe('shared');
    expect(rolesContent(state)).toBeUndefined();
    expect(createContent(new Map())).toBeUndefined();
  });

  it('ignores stored values that are not known strings', () => {
    const base = buildState([create, join]);
    const odd: StateMap = new Map(base);
    odd.set(
      stateKey('room.join_rules', ''),
      toEvent({ type: 'room.join_rules', state_key: '', sender: ALICE, content: { join_rule: 'open' } }),
    );
    odd.set(stateKey('room.member', ALICE), toEvent({ type: 'room.member', state_key: ALICE, sender: ALICE, content: {} }));
    expect(joinRule(odd)).toBe('invite');
    expect(membershipOf(odd, ALICE)).toBe('leave');
  });

  it('applyEvent copies the map and skips message-like events', () => {
    const state = buildState([create]);
    const joined = applyEvent(state, toEvent(join));
    expect(state.size).toBe(1);
    expect(joined.size).toBe(2);
    expect(applyEvent(joined, toEvent({ type: 'room.message', sender: ALICE, content: { body: 'hi' } })).size).toBe(2);
    expect(() => applyEvent({} as any, toEvent(join))).toThrow(TypeError);
  });
});

describe('authorize on hostile input', () => {
  const state = buildState([create, join]);
  const HOSTILE: unknown[] = [undefined, null, 0, '', 'room.message', [], {}, { type: 'room.message' }, Object.create(null)];

  it.each(HOSTILE)('refuses event %s without throwing', (bad) => {
    const result = authorize(state, bad as any);
    expect(result.ok).toBe(false);
  });

  it.each([
    ['content', null],
    ['content', []],
    ['content', 'text'],
    ['type', 7],
    ['type', ''],
    ['sender', null],
    ['sender', '@Alice:a.example'],
    ['state_key', 5],
    ['room_id', null],
    ['room_id', 'room'],
    ['origin', 'evil.example'],
  ])('refuses an event with %s = %j', (field, value) => {
    const event = toEvent({ type: 'room.message', sender: ALICE, content: { body: 'hi' } });
    expect(authorize(state, { ...event, [field]: value } as any).ok).toBe(false);
  });

  it('throws on a state that is not a Map (a caller bug, not hostile input)', () => {
    expect(() => authorize({} as any, toEvent(join))).toThrow(TypeError);
  });
});
