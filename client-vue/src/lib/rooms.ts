import type { ClientEvent, RoomSummary } from '@parley/schemas';
import { splitUserId } from './ids.js';
import { plainPreview } from './markdown.js';
import { mentionsIn } from './mentions.js';

/** What the sidebar shows: spaces with their channels, rooms outside spaces, and invites. */
export interface SidebarTree {
  invites: RoomSummary[];
  /** Joined rooms created as direct messages, listed under the other person's name. */
  directs: RoomSummary[];
  spaces: Array<{ space: RoomSummary; channels: RoomSummary[] }>;
  rooms: RoomSummary[];
}

export function roomName(room: Pick<RoomSummary, 'name' | 'canonical_alias' | 'room_id'>): string {
  return room.name || room.canonical_alias || room.room_id;
}

function matches(room: RoomSummary, filter: string, labels?: ReadonlyMap<string, string>): boolean {
  if (!filter) return true;
  const f = filter.toLowerCase();
  return [room.name, room.canonical_alias, room.topic, room.room_id, labels?.get(room.room_id)].some((v) => v?.toLowerCase().includes(f));
}

/** The other person in a direct message: a joined or invited member who is not me. */
export function directPartner(members: ReadonlyArray<{ user_id: string; membership: string }> | undefined, me: string): string | null {
  const others = (members ?? []).filter((m) => m.user_id !== me && (m.membership === 'join' || m.membership === 'invite'));
  return others[0]?.user_id ?? null;
}

/**
 * Builds the sidebar from the room list. Channels go under their space when we are in the
 * space; otherwise (space not joined) they are listed as rooms. A filter keeps a space when
 * it or any of its channels matches.
 */
export function buildSidebar(list: readonly RoomSummary[], filter = '', labels?: ReadonlyMap<string, string>): SidebarTree {
  const f = filter.trim();
  const joined = list.filter((r) => r.membership === 'join');
  const spaces = joined.filter((r) => r.kind === 'space');
  const spaceIds = new Set(spaces.map((s) => s.room_id));
  const rooms = joined.filter((r) => r.kind === 'room' && !r.is_direct && !(r.parent && spaceIds.has(r.parent)));
  return {
    invites: list.filter((r) => r.membership === 'invite' && matches(r, f, labels)),
    directs: joined.filter((r) => r.kind === 'room' && r.is_direct && matches(r, f, labels)),
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
  if (event.type === 'room.encrypted') return `${who}: Encrypted message`;
  const msgtype = content.msgtype;
  if (msgtype === 'image') return `${who} sent an image`;
  if (msgtype === 'file') return `${who} sent a file`;
  let body = typeof content.body === 'string' ? content.body : '';
  for (const id of mentionsIn(body)) body = body.split(id).join(`@${names?.get(id) || (splitUserId(id)?.localpart ?? id)}`);
  return `${who}: ${plainPreview(body, 80)}`;
}

export function unreadLabel(count: number): string {
  return count > 99 ? '99+' : String(count);
}
