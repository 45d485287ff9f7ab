import { ALL_PERMISSIONS, parseUserId } from '@parley/schemas';

/**
 * Shape check for `room.roles` content, mirroring the `RolesContent` schema by hand: auth
 * rules must give the same answer on every server without depending on a validator's
 * options, and the reason names the exact field so a refused roles edit is easy to fix.
 * Returns null when the content is well formed.
 */
export function rolesContentProblem(content: unknown): string | null {
  if (!isPlainObject(content)) return 'room.roles content must be an object';
  for (const key of Object.keys(content)) {
    if (key !== 'roles' && key !== 'users') return `room.roles content has an unknown field "${key}"`;
  }
  const { roles, users } = content;
  if (!isPlainObject(roles)) return 'room.roles content.roles must be an object';
  if (!isPlainObject(users)) return 'room.roles content.users must be an object';

  for (const [id, role] of Object.entries(roles)) {
    const problem = roleProblem(id, role);
    if (problem) return problem;
  }
  for (const [user, list] of Object.entries(users)) {
    if (parseUserId(user) === null) return `room.roles users key "${user}" is not a valid user ID`;
    if (!Array.isArray(list) || list.length > MAX_ROLES_PER_USER) {
      return `room.roles users["${user}"] must be an array of at most ${MAX_ROLES_PER_USER} role IDs`;
    }
    const seen = new Set<unknown>();
    for (const roleId of list) {
      if (typeof roleId !== 'string' || !Object.hasOwn(roles, roleId)) {
        return `room.roles users["${user}"] names an unknown role ${JSON.stringify(roleId)}`;
      }
      if (seen.has(roleId)) return `room.roles users["${user}"] lists role "${roleId}" twice`;
      seen.add(roleId);
    }
  }
  return null;
}

const ROLE_ID = /^[a-z0-9_-]{1,32}$/;
const COLOR = /^#[0-9a-fA-F]{6}$/;
const MAX_ROLES_PER_USER = 32;
const MAX_POSITION = 1000;
const ROLE_FIELDS = new Set(['name', 'position', 'permissions', 'color']);

function roleProblem(id: string, role: unknown): string | null {
  const at = `room.roles roles["${id}"]`;
  if (!ROLE_ID.test(id)) return `${at}: role ID must match [a-z0-9_-]{1,32}`;
  if (!isPlainObject(role)) return `${at} must be an object`;
  for (const key of Object.keys(role)) {
    if (!ROLE_FIELDS.has(key)) return `${at} has an unknown field "${key}"`;
  }
  const { name, position, permissions, color } = role;
  if (typeof name !== 'string' || name.length < 1 || name.length > 64) return `${at}.name must be a string of 1 to 64 characters`;
  if (!Number.isInteger(position) || (position as number) < 0 || (position as number) > MAX_POSITION) {
    return `${at}.position must be an integer from 0 to ${MAX_POSITION}`;
  }
  // Bits outside ALL_PERMISSIONS would be granted by a later release that defines them.
  // The range test comes first because bitwise operators truncate to 32 bits.
  const bits = permissions as number;
  if (!Number.isInteger(bits) || bits < 0 || bits > ALL_PERMISSIONS || (bits & ~ALL_PERMISSIONS) !== 0) {
    return `${at}.permissions must be a combination of known permission bits`;
  }
  if (color !== undefined && (typeof color !== 'string' || !COLOR.test(color))) return `${at}.color must look like #rrggbb`;
  return null;
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}
