import { Type } from '@sinclair/typebox';

// docs/protocol.md: localparts are [a-z0-9._=-]+, at most 64 characters.
export const LOCALPART_PATTERN = '^[a-z0-9._=-]{1,64}$';
// Server name: DNS name or IP literal (v4 or bracketed v6), optional port.
export const SERVER_NAME_PATTERN =
  '^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*|\\[[0-9A-Fa-f:.]{2,45}\\])(?::[0-9]{1,5})?$';
export const USER_ID_PATTERN = '^@[a-z0-9._=-]{1,64}:[^\\s:]+(?::[0-9]{1,5})?$';

export const Localpart = Type.String({ pattern: LOCALPART_PATTERN, minLength: 1, maxLength: 64 });
export const UserId = Type.String({ pattern: USER_ID_PATTERN, maxLength: 255 });
export const DeviceId = Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$' });

const localpartRe = new RegExp(LOCALPART_PATTERN);
const serverNameRe = new RegExp(SERVER_NAME_PATTERN);

export interface ParsedUserId {
  localpart: string;
  server: string;
}

/** Splits `@localpart:server`; returns null for anything that is not a valid user ID. */
export function parseUserId(id: unknown): ParsedUserId | null {
  if (typeof id !== 'string' || id.length > 255 || !id.startsWith('@')) return null;
  const colon = id.indexOf(':');
  if (colon < 0) return null;
  const localpart = id.slice(1, colon);
  const server = id.slice(colon + 1);
  if (!localpartRe.test(localpart) || !serverNameRe.test(server)) return null;
  return { localpart, server };
}

export function isServerName(name: unknown): name is string {
  return typeof name === 'string' && name.length <= 255 && serverNameRe.test(name);
}

export function userId(localpart: string, server: string): string {
  return `@${localpart}:${server}`;
}
