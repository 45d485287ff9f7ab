import { parseUserId, type RoomEvent } from '@parley/schemas';
import { ALLOW, type AuthResult, refuse, requireJoinedWith } from './auth-common.js';
import { positionOf } from './permissions.js';
import { createContent, isMembership, joinRule, membershipOf, type StateMap } from './state.js';

/**
 * `room.member` (docs/protocol.md): the state_key is the target user, `content.membership` the
 * membership they move to. Each target membership has its own rule below.
 */
export function authorizeMember(state: StateMap, event: RoomEvent): AuthResult {
  const target = event.state_key ?? '';
  if (parseUserId(target) === null) return refuse('room.member state_key must be a valid user ID');
  const membership = event.content.membership;
  if (!isMembership(membership)) return refuse('room.member content.membership must be join, invite, leave, ban or knock');

  switch (membership) {
    case 'join':
      return authorizeJoin(state, event.sender, target);
    case 'invite':
      return authorizeInvite(state, event.sender, target);
    case 'leave':
      return event.sender === target ? authorizeOwnLeave(state, target) : authorizeKickOrUnban(state, event.sender, target);
    case 'ban':
      return authorizeBan(state, event.sender, target);
    case 'knock':
      return authorizeKnock(state, event.sender, target);
  }
}

function authorizeJoin(state: StateMap, sender: string, target: string): AuthResult {
  if (sender !== target) return refuse('a user can only join for themself');
  const current = membershipOf(state, target);
  if (current === 'ban') return refuse('a banned user cannot join');
  // Already joined: a profile update (display name, avatar).
  if (current === 'join') return ALLOW;
  // The creator's own join must come right after room.create, when nobody can invite yet.
  if (createContent(state)?.creator === sender && state.size === 1) return ALLOW;
  if (current === 'invite') return ALLOW;
  const rule = joinRule(state);
  if (rule === 'public') return ALLOW;
  return refuse(`join_rule is ${rule}: joining needs an invite`);
}

function authorizeInvite(state: StateMap, sender: string, target: string): AuthResult {
  const senderOk = requireJoinedWith(state, sender, 'INVITE');
  if (!senderOk.ok) return senderOk;
  const current = membershipOf(state, target);
  if (current === 'join') return refuse('cannot invite a user who is already joined');
  if (current === 'ban') return refuse('cannot invite a banned user; unban them first');
  // From leave, knock (accepting a knock) or invite (a repeated invite, harmless).
  return ALLOW;
}

function authorizeOwnLeave(state: StateMap, user: string): AuthResult {
  const current = membershipOf(state, user);
  if (current === 'join' || current === 'invite' || current === 'knock') return ALLOW;
  // A banned user leaving would lift their own ban.
  return refuse(`cannot leave from membership ${current}`);
}

// Leaving someone else out is a kick, or an unban when the target is banned.
function authorizeKickOrUnban(state: StateMap, sender: string, target: string): AuthResult {
  const current = membershipOf(state, target);
  if (current === 'ban') {
    const senderOk = requireJoinedWith(state, sender, 'BAN');
    if (!senderOk.ok) return senderOk;
    return outranks(state, sender, target, 'unban');
  }
  const senderOk = requireJoinedWith(state, sender, 'KICK');
  if (!senderOk.ok) return senderOk;
  if (current === 'leave') return refuse('cannot kick a user who is not joined, invited or knocking');
  return outranks(state, sender, target, 'kick');
}

function authorizeBan(state: StateMap, sender: string, target: string): AuthResult {
  const senderOk = requireJoinedWith(state, sender, 'BAN');
  if (!senderOk.ok) return senderOk;
  if (sender === target) return refuse('cannot ban yourself');
  // Any current membership: banning a user who never joined keeps them out pre-emptively.
  return outranks(state, sender, target, 'ban');
}

function authorizeKnock(state: StateMap, sender: string, target: string): AuthResult {
  if (sender !== target) return refuse('a user can only knock for themself');
  const rule = joinRule(state);
  if (rule !== 'knock') return refuse(`join_rule is ${rule}: knocking needs join_rule knock`);
  const current = membershipOf(state, target);
  if (current === 'ban') return refuse('a banned user cannot knock');
  if (current === 'join' || current === 'invite') return refuse(`cannot knock while ${current === 'join' ? 'joined' : 'invited'}`);
  return ALLOW;
}

// Strictly greater: two moderators at the same position cannot act on each other.
function outranks(state: StateMap, sender: string, target: string, action: string): AuthResult {
  if (positionOf(state, sender) > positionOf(state, target)) return ALLOW;
  return refuse(`cannot ${action} a member at or above your own position`);
}
