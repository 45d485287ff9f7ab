import { ALL_PERMISSIONS, type ClientEvent, Permission, type PermissionName, type Role, type RolesContent } from '@parley/schemas';

// The client's reading of `room.roles` (docs/protocol.md, federation/src/room/permissions.ts): the
// same rules, so the settings panel offers only what the server will accept. The server
// still decides; these only decide what to show.

export const EVERYONE = 'everyone';

/** Every permission bit with a sentence a person can read, in the order the panel lists them. */
export const PERMISSIONS: ReadonlyArray<{ name: PermissionName; label: string }> = [
  { name: 'VIEW', label: 'See messages' },
  { name: 'SEND', label: 'Send messages' },
  { name: 'REACT', label: 'Add reactions' },
  { name: 'ATTACH', label: 'Upload files' },
  { name: 'MANAGE_MESSAGES', label: 'Delete and pin others’ messages' },
  { name: 'INVITE', label: 'Invite people' },
  { name: 'KICK', label: 'Remove people' },
  { name: 'BAN', label: 'Ban people' },
  { name: 'MANAGE_ROLES', label: 'Manage roles' },
  { name: 'MANAGE_ROOM', label: 'Change name, topic, avatar, join rules' },
  { name: 'ADMIN', label: 'Administrator (everything)' },
];

export interface RoomAuthState {
  creator: string | null;
  roles: RolesContent | null;
}

/** The creator and roles out of a room's state events. */
export function authStateOf(state: readonly ClientEvent[]): RoomAuthState {
  let creator: string | null = null;
  let roles: RolesContent | null = null;
  for (const ev of state) {
    if (ev.state_key !== '') continue;
    if (ev.type === 'room.create' && typeof ev.content.creator === 'string') creator = ev.content.creator;
    if (ev.type === 'room.roles' && ev.content.roles && ev.content.users) roles = ev.content as unknown as RolesContent;
  }
  return { creator, roles };
}

function roleOf(roles: RolesContent, id: string): Role | undefined {
  return Object.hasOwn(roles.roles, id) ? roles.roles[id] : undefined;
}

/** `everyone` plus the user's listed roles. */
export function roleIdsOf(roles: RolesContent | null, userId: string): string[] {
  const listed = roles && Object.hasOwn(roles.users, userId) ? (roles.users[userId] ?? []) : [];
  return [EVERYONE, ...listed];
}

export function permissionsOf(auth: RoomAuthState, userId: string): number {
  let bits = 0;
  if (auth.roles) for (const id of roleIdsOf(auth.roles, userId)) bits |= roleOf(auth.roles, id)?.permissions ?? 0;
  if (auth.creator === userId) bits |= Permission.ADMIN;
  return bits & Permission.ADMIN ? ALL_PERMISSIONS : bits;
}

export function positionOf(auth: RoomAuthState, userId: string): number {
  if (auth.creator === userId) return Number.POSITIVE_INFINITY;
  if (!auth.roles) return 0;
  let position = 0;
  for (const id of roleIdsOf(auth.roles, userId)) position = Math.max(position, roleOf(auth.roles, id)?.position ?? 0);
  return position;
}

export function can(auth: RoomAuthState, userId: string, permission: PermissionName): boolean {
  return (permissionsOf(auth, userId) & Permission[permission]) !== 0;
}

/** May `me` act on `target` (kick, ban, change their roles)? Only on people strictly below. */
export function outranks(auth: RoomAuthState, me: string, target: string): boolean {
  return me !== target && positionOf(auth, target) < positionOf(auth, me);
}

export interface ListedRole extends Role {
  id: string;
}

/** Roles highest first (ties by name), `everyone` last. */
export function sortedRoles(roles: RolesContent | null): ListedRole[] {
  if (!roles) return [];
  return Object.entries(roles.roles)
    .map(([id, r]) => ({ id, ...r }))
    .sort((a, b) => b.position - a.position || a.name.localeCompare(b.name));
}

/** A role's colour for a member (their highest coloured role), or null. */
export function colourOf(roles: RolesContent | null, userId: string): string | null {
  if (!roles) return null;
  let best: Role | undefined;
  for (const id of roleIdsOf(roles, userId)) {
    const r = roleOf(roles, id);
    if (r?.color && (!best || r.position > best.position)) best = r;
  }
  return best?.color ?? null;
}

/** A role ID (`[a-z0-9_-]{1,32}`) from a name, unique among `existing`. */
export function newRoleId(name: string, existing: Iterable<string>): string {
  const taken = new Set(existing);
  const base =
    name
      .toLowerCase()
      .normalize('NFKD')
      .replace(/[^a-z0-9_-]+/g, '-')
      .replace(/^-+|-+$/g, '')
      .slice(0, 28) || 'role';
  if (!taken.has(base)) return base;
  for (let i = 2; ; i++) {
    const id = `${base}-${i}`.slice(0, 32);
    if (!taken.has(id)) return id;
  }
}

/** New content with one role added or replaced (`role` null removes it and its assignments). */
export function withRole(roles: RolesContent, id: string, role: Role | null): RolesContent {
  const next: RolesContent = { roles: { ...roles.roles }, users: { ...roles.users } };
  if (role) {
    next.roles[id] = role;
    return next;
  }
  delete next.roles[id];
  for (const [user, list] of Object.entries(next.users)) {
    const kept = list.filter((r) => r !== id);
    if (kept.length === 0) delete next.users[user];
    else next.users[user] = kept;
  }
  return next;
}

/** New content with a user's role list set (`everyone` is implicit and never stored). */
export function withUserRoles(roles: RolesContent, userId: string, ids: readonly string[]): RolesContent {
  const next: RolesContent = { roles: roles.roles, users: { ...roles.users } };
  const list = [...new Set(ids)].filter((id) => id !== EVERYONE && Object.hasOwn(roles.roles, id));
  if (list.length === 0) delete next.users[userId];
  else next.users[userId] = list;
  return next;
}

export function permissionNames(bits: number): PermissionName[] {
  return PERMISSIONS.filter((p) => (bits & Permission[p.name]) !== 0).map((p) => p.name);
}
