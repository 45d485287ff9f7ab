import type { RolesContent, RoomEvent } from '@parley/schemas';
import { ALLOW, type AuthResult, refuse, requireJoinedWith } from './auth-common.js';
import { sameJson } from './json.js';
import { EVERYONE_ROLE, permissionsOf, positionOf, roleOf } from './permissions.js';
import { rolesContentProblem } from './roles-shape.js';
import { rolesContent, type StateMap } from './state.js';

/**
 * `room.roles`: a diff-based rule. Whatever the sender touches (a role's definition, a
 * user's role list) must sit strictly below the sender's own position, and no role may come
 * out holding bits the sender lacks, so nobody can grant themself or others more than they
 * have. Untouched parts of the content are never judged, so an old oddity does not block
 * unrelated edits.
 */
export function authorizeRoles(state: StateMap, event: RoomEvent): AuthResult {
  if (event.state_key !== '') return refuse("room.roles requires state_key ''");
  const senderOk = requireJoinedWith(state, event.sender, 'MANAGE_ROLES');
  if (!senderOk.ok) return senderOk;
  const problem = rolesContentProblem(event.content);
  if (problem) return refuse(problem);

  const next = event.content as RolesContent;
  const everyone = roleOf(next, EVERYONE_ROLE);
  if (!everyone) return refuse('room.roles must keep the everyone role');
  if (everyone.position !== 0) return refuse('the everyone role must stay at position 0');

  // A room's first room.roles replaces nothing.
  const prev = rolesContent(state) ?? { roles: {}, users: {} };
  const sender = { id: event.sender, position: positionOf(state, event.sender), permissions: permissionsOf(state, event.sender) };
  return checkRoleChanges(prev, next, sender) ?? checkUserChanges(state, prev, next, sender) ?? ALLOW;
}

interface Sender {
  id: string;
  position: number;
  permissions: number;
}

function checkRoleChanges(prev: RolesContent, next: RolesContent, sender: Sender): AuthResult | null {
  for (const id of new Set([...Object.keys(prev.roles), ...Object.keys(next.roles)])) {
    const before = roleOf(prev, id);
    const after = roleOf(next, id);
    if (sameJson(before, after)) continue;
    if (before && before.position >= sender.position) return refuse(`cannot change role "${id}": it is at or above your own position`);
    if (after && after.position >= sender.position) return refuse(`cannot place role "${id}" at or above your own position`);
    // ADMIN senders hold ALL_PERMISSIONS already (permissionsOf), so this never binds them.
    if (after && (after.permissions & ~sender.permissions) !== 0) {
      return refuse(`cannot give role "${id}" permissions you do not hold`);
    }
  }
  return null;
}

function checkUserChanges(state: StateMap, prev: RolesContent, next: RolesContent, sender: Sender): AuthResult | null {
  for (const user of new Set([...Object.keys(prev.users), ...Object.keys(next.users)])) {
    const before = new Set(listOf(prev, user));
    const after = new Set(listOf(next, user));
    const changed = [...before].filter((r) => !after.has(r)).concat([...after].filter((r) => !before.has(r)));
    if (changed.length === 0) continue; // reordering a list changes nothing
    // The sender's own list is judged like anyone's, less the position of the user: they may
    // drop lower roles, and take one only if they already hold all its bits.
    if (user !== sender.id && positionOf(state, user) >= sender.position) {
      return refuse(`cannot change the roles of ${user}: they are at or above your own position`);
    }
    for (const id of changed) {
      // A role whose position also changed was checked above; either position counts here.
      const position = Math.max(roleOf(prev, id)?.position ?? 0, roleOf(next, id)?.position ?? 0);
      if (position >= sender.position) return refuse(`cannot assign or remove role "${id}": it is at or above your own position`);
      // Position alone let a role manager hand out a lower role carrying BAN, KICK or ADMIN
      // (issue 10, M3): granting a role grants its bits, so the sender must hold them all —
      // themself included. Taking a role away grants nothing.
      const granted = after.has(id) && !before.has(id) ? (roleOf(next, id)?.permissions ?? 0) : 0;
      if ((granted & ~sender.permissions) !== 0) return refuse(`cannot assign role "${id}": it carries permissions you do not hold`);
    }
  }
  return null;
}

function listOf(roles: RolesContent, user: string): string[] {
  return Object.hasOwn(roles.users, user) ? (roles.users[user] ?? []) : [];
}
