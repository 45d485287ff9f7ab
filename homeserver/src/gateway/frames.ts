import type { ClientEvent, Frame } from '@parley/schemas';
import type { StreamNote } from '../repositories/stream.js';

const MESSAGE_TYPES = new Set(['room.message', 'room.encrypted']);

/** Who a note is for: room members, a user (or one device), or members of any of a set of rooms. */
export function isFor(note: StreamNote, userId: string, deviceId: string, rooms: ReadonlySet<string>): boolean {
  if (note.room_id !== null && !note.private && rooms.has(note.room_id)) return true;
  if (note.user_id === userId && (note.device_id === null || note.device_id === deviceId)) return true;
  return note.room_ids?.some((r) => rooms.has(r)) ?? false;
}

/** Whether an event counts toward the receiver's unread count. */
export function countsAsUnread(event: ClientEvent, userId: string): boolean {
  if (!MESSAGE_TYPES.has(event.type) || event.sender === userId || event.unsigned?.redacted_because) return false;
  return (event.content.relates_to as { type?: string } | undefined)?.type !== 'replace';
}

/** The frame one device receives for a note (its own txn_id on its own sends). */
export function frameFor(note: StreamNote, deviceId: string, unreadCount?: number): Frame | null {
  if (note.kind === 'event') {
    const base = note.data.event as ClientEvent | undefined;
    if (!base) return null;
    let event = base;
    if (note.data.txn_device === deviceId && typeof note.data.txn_id === 'string') {
      event = { ...base, unsigned: { ...(base.unsigned ?? {}), txn_id: note.data.txn_id } };
    }
    return { position: note.position, kind: 'event', data: unreadCount === undefined ? { event } : { event, unread_count: unreadCount } };
  }
  switch (note.kind) {
    case 'typing':
    case 'receipt':
    case 'presence':
    case 'profile':
    case 'device_list':
    case 'to_device':
      return { position: note.position, kind: note.kind, data: note.data } as Frame;
    default:
      return null;
  }
}

/**
 * The `frame` message one device receives for a note, serialised once per note and shared:
 * every receiver with the same unread count gets the same bytes (event frames differ only by
 * `unread_count`, and by `txn_id` on the sending device, which alone is serialised apart).
 * Cached on the note object, so live fan-out to N sockets costs one JSON.stringify of the
 * event, not N.
 */
const shared = new WeakMap<StreamNote, Map<number, Buffer>>();
const NO_UNREAD = -1;

export function frameMessageFor(note: StreamNote, deviceId: string, unreadCount?: number): Buffer | null {
  if (note.kind === 'event' && note.data.txn_device === deviceId && typeof note.data.txn_id === 'string') {
    const frame = frameFor(note, deviceId, unreadCount);
    return frame ? Buffer.from(JSON.stringify({ op: 'frame', frame })) : null;
  }
  let byUnread = shared.get(note);
  const key = unreadCount ?? NO_UNREAD;
  const hit = byUnread?.get(key);
  if (hit) return hit;
  const frame = frameFor(note, deviceId, unreadCount);
  if (!frame) return null;
  const bytes = Buffer.from(JSON.stringify({ op: 'frame', frame }));
  if (!byUnread) {
    byUnread = new Map();
    shared.set(note, byUnread);
  }
  byUnread.set(key, bytes);
  return bytes;
}
