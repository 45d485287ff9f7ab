import type { CreateContent, HistoryVisibility, JoinRule, Membership, RolesContent, RoomEvent } from '@parley/schemas';
import { rolesContentProblem } from './roles-shape.js';

/**
 * Current room state (docs/protocol.md): the latest event for each `(type, state_key)`, keyed by
 * `stateKey(type, state_key)`. The chain verifier and the host both build it by replaying the
 * log, so every accessor below must read it the same way on every server.
 */
export type StateMap = Map<string, RoomEvent>;

// NUL cannot occur in an event type (EventType pattern) nor in stored text (schemas refuse
// it), so the joined key is unambiguous.
export function stateKey(type: string, key: string): string {
  if (typeof type !== 'string') throw new TypeError('stateKey: type must be a string');
  if (typeof key !== 'string') throw new TypeError('stateKey: stateKey must be a string');
  return `${type}\u0000${key}`;
}

export function getState(state: StateMap, type: string, key = ''): RoomEvent | undefined {
  if (!(state instanceof Map)) throw new TypeError('getState: state must be a Map');
  return state.get(stateKey(type, key));
}

/**
 * Returns a new map with `event` applied when it is a state event; the input map is left
 * alone so callers can keep the state before an event (auth rules compare old and new).
 */
export function applyEvent(state: StateMap, event: RoomEvent): StateMap {
  if (!(state instanceof Map)) throw new TypeError('applyEvent: state must be a Map');
  const next = new Map(state);
  if (typeof event.state_key === 'string') next.set(stateKey(event.type, event.state_key), event);
  return next;
}

export function createContent(state: StateMap): CreateContent | undefined {
  return getState(state, 'room.create')?.content as CreateContent | undefined;
}

const MEMBERSHIPS: ReadonlySet<string> = new Set<Membership>(['join', 'invite', 'leave', 'ban', 'knock']);
const JOIN_RULES: ReadonlySet<string> = new Set<JoinRule>(['public', 'invite', 'knock']);
const VISIBILITIES: ReadonlySet<string> = new Set<HistoryVisibility>(['world_readable', 'shared', 'invited', 'joined']);

export function isMembership(value: unknown): value is Membership {
  return typeof value === 'string' && MEMBERSHIPS.has(value);
}
export function isJoinRule(value: unknown): value is JoinRule {
  return typeof value === 'string' && JOIN_RULES.has(value);
}
export function isHistoryVisibility(value: unknown): value is HistoryVisibility {
  return typeof value === 'string' && VISIBILITIES.has(value);
}

// The defaults below are the safe end of each setting: a user never seen is out of the
// room, a room without a join rule is invite-only. A stored value that is not one of the
// known strings (it passed auth under no rule) falls back to the default too.

export function membershipOf(state: StateMap, userId: string): Membership {
  const membership = getState(state, 'room.member', userId)?.content.membership;
  return isMembership(membership) ? membership : 'leave';
}

export function joinRule(state: StateMap): JoinRule {
  const rule = getState(state, 'room.join_rules')?.content.join_rule;
  return isJoinRule(rule) ? rule : 'invite';
}

export function historyVisibility(state: StateMap): HistoryVisibility {
  const visibility = getState(state, 'room.history_visibility')?.content.history_visibility;
  return isHistoryVisibility(visibility) ? visibility : 'shared';
}

/** `room.roles` content, or undefined when the room has none (or a malformed one). */
export function rolesContent(state: StateMap): RolesContent | undefined {
  const content = getState(state, 'room.roles')?.content;
  if (content === undefined || rolesContentProblem(content) !== null) return undefined;
  return content as RolesContent;
}
