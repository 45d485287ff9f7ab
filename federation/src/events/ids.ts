import { isServerName, parseUserId, ROOM_ID_PATTERN } from '@parley/schemas';

const ROOM_ID = new RegExp(ROOM_ID_PATTERN);

/** The host of a room: the server part of `!opaque:host` (docs/protocol.md), or null if not a room ID. */
export function roomHost(roomId: unknown): string | null {
  if (typeof roomId !== 'string' || roomId.length > 255 || !ROOM_ID.test(roomId)) return null;
  // The opaque part has no `:`, so the first one starts the server name (which may carry a port).
  const host = roomId.slice(roomId.indexOf(':') + 1);
  return isServerName(host) ? host : null;
}

/** The server of `@localpart:server`, or null if not a user ID. */
export function userServer(userId: unknown): string | null {
  return parseUserId(userId)?.server ?? null;
}
