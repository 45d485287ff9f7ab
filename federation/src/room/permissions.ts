import { ALL_PERMISSIONS, Permission, type PermissionName, parseUserId, type RolesContent } from '@parley/schemas';
import { createContent, rolesContent, type StateMap } from './state.js';

/** The implicit role every member holds; its position is always 0. */
export const EVERYONE_ROLE = 'everyone';

/**
 * A user's permission bitfield: the union of `everyone` and the user's roles in
 * `room.roles`. The creator always holds ADMIN, and ADMIN implies every bit.
 *
 * A room without `room.roles` grants nothing by role (only the creator holds anything). We
 * deliberately do not fall back to `defaultRoles()`: the defaults may change in a later
 * release, and old history must authorize the same way forever.
 */
export function permissionsOf(state: StateMap, userId: string): number {
  let bits = 0;
  const roles = rolesContent(state);
  if (roles) {
    for (const id of roleIdsOf(roles, userId)) bits |= roleOf(roles, id)?.permissions ?? 0;
  }
  if (createContent(state)?.creator === userId) bits |= Permission.ADMIN;
  return bits & Permission.ADMIN ? ALL_PERMISSIONS : bits;
}

/**
 * The highest position among the user's roles (`everyone` counts as 0). The creator sits
 * above every role, so nobody can kick, ban or demote them.
 */
export function positionOf(state: StateMap, userId: string): number {
  if (createContent(state)?.creator === userId) return Number.POSITIVE_INFINITY;
  const roles = rolesContent(state);
  if (!roles) return 0;
  let position = 0;
  for (const id of roleIdsOf(roles, userId)) position = Math.max(position, roleOf(roles, id)?.position ?? 0);
  return position;
}

export function can(state: StateMap, userId: string, permission: PermissionName): boolean {
  // An unknown name is a programming error, not a refusal: fail loudly.
  if (!Object.hasOwn(Permission, permission)) throw new TypeError(`can: unknown permission "${String(permission)}"`);
  return (permissionsOf(state, userId) & Permission[permission]) !== 0;
}

/** The `room.roles` content a new room starts with; the creator holds `admin`. */
export function defaultRoles(creator: string): RolesContent {
  if (parseUserId(creator) === null) throw new TypeError('defaultRoles: creator must be a valid user ID');
  const member = Permission.VIEW | Permission.SEND | Permission.REACT | Permission.ATTACH;
  const moderator = member | Permission.MANAGE_MESSAGES | Permission.INVITE | Permission.KICK | Permission.BAN;
  return {
    roles: {
      // All bits rather than ADMIN alone, so clients that list bits show every box ticked.
      admin: { name: 'Admin', position: 100, permissions: ALL_PERMISSIONS },
      moderator: { name: 'Moderator', position: 50, permissions: moderator },
      // Inviting is left to moderators: members of a private room should not widen it.
      [EVERYONE_ROLE]: { name: 'everyone', position: 0, permissions: member },
    },
    users: { [creator]: ['admin'] },
  };
}

/** `everyone` plus the user's listed roles. */
export function roleIdsOf(roles: RolesContent, userId: string): string[] {
  const listed = Object.hasOwn(roles.users, userId) ? (roles.users[userId] ?? []) : [];
  return [EVERYONE_ROLE, ...listed];
}

// hasOwn guards against role IDs such as "constructor" resolving through the prototype.
export function roleOf(roles: RolesContent, id: string): RolesContent['roles'][string] | undefined {
  return Object.hasOwn(roles.roles, id) ? roles.roles[id] : undefined;
}
