import type { ClientEvent, RoomSummary } from '@parley/schemas';
import { splitUserId } from './ids.js';
import { plainPreview } from './markdown.js';

/** What the sidebar shows: spaces with their channels, rooms outside spaces, and invites. */
export interface SidebarTree {
  invites: RoomSummary[];
  spaces: Array<{ space: RoomSummary; channels: RoomSummary[] }>;
  rooms: RoomSummary[];
}

export function roomName(room: Pick<RoomSummary, 'name' | 'canonical_alias' | 'room_id'>): string {
  return room.name || room.canonical_alias || room.room_id;
}

function matches(room: RoomSummary, filter: string): boolean {
  if (!filter) return true;
  const f = filter.toLowerCase();
  return [room.name, room.canonical_alias, room.topic, room.room_id].some((v) => v?.toLowerCase().includes(f));
}

/**
 * Builds the sidebar from the room list. Channels go under their space when we are in the
 * space; otherwise (space not joined) they are listed as rooms. A filter keeps a space when
 * it or any of its channels matches.
 */
export function buildSidebar(list: readonly RoomSummary[], filter = ''): SidebarTree {
  const f = filter.trim();
  const joined = list.filter((r) => r.membership === 'join');
  const spaces = joined.filter((r) => r.kind === 'space');
  const spaceIds = new Set(spaces.map((s) => s.room_id));
  const rooms = joined.filter((r) => r.kind === 'room' && !(r.parent && spaceIds.has(r.parent)));
  return {
    invites: list.filter((r) => r.membership === 'invite' && matches(r, f)),
    spaces: spaces
      .map((space) => ({
        space,
        channels: joined.filter((r) => r.parent === space.room_id && (matches(r, f) || matches(space, f))),
      }))
      .filter((s) => matches(s.space, f) || s.channels.length > 0),
    rooms: rooms.filter((r) => matches(r, f)),
  };
}

/** The text under a room's name: who said what last. */
export function lastMessagePreview(event: ClientEvent | null, me: string, names?: ReadonlyMap<string, string | null>): string {
  if (!event) return '';
  if (event.unsigned?.redacted_because) return 'Message deleted';
  // The latest message may itself be an edit: show what it says now, not "* …".
  const replaced =
    (event.content.relates_to as { type?: string } | undefined)?.type === 'replace'
      ? (event.content.new_content as Record<string, unknown> | undefined)
      : undefined;
  const content = replaced ?? (event.unsigned?.edit as { content?: Record<string, unknown> } | undefined)?.content ?? event.content;
  const who = event.sender === me ? 'You' : (names?.get(event.sender) ?? splitUserId(event.sender)?.localpart ?? event.sender);
  if (event.type === 'room.encrypted') return `${who}: encrypted message`;
  const msgtype = content.msgtype;
  if (msgtype === 'image') return `${who} sent an image`;
  if (msgtype === 'file') return `${who} sent a file`;
  const body = typeof content.body === 'string' ? content.body : '';
  return `${who}: ${plainPreview(body, 80)}`;
}

export function unreadLabel(count: number): string {
  return count > 99 ? '99+' : String(count);
}
