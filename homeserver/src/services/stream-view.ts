import { canSee, type MembershipChange } from '@parley/federation/room';
import type { HistoryVisibility, Membership } from '@parley/schemas';
import { isFor } from '../gateway/frames.js';
import type { RoomRepository } from '../repositories/rooms.js';
import type { StreamNote, StreamRepository } from '../repositories/stream.js';

const EPHEMERAL_ROOM_KINDS = new Set(['typing', 'receipt']);
const HISTORY_VISIBILITIES = new Set(['world_readable', 'shared', 'invited', 'joined']);

/**
 * What one device may receive from the stream, as it walks the stream in position order
 * (replay, long-poll and live alike):
 *
 * - `rooms`: the rooms the user is joined to at the current point of the walk;
 * - `logs`: the user's membership log per room, so a room event passes exactly the check
 *   `/messages` applies (`canSee` with the history visibility in force at that event);
 * - `ephemeralFrom`: per room, the position from which typing, receipts and the presence,
 *   profile and device-list notes of its members may be shown (the user's current stretch of
 *   membership; these have no seq to judge them by).
 *
 * Notes addressed to the user (their own membership events, to-device, their own receipts)
 * always pass: that is how they learn they were invited, kicked or banned.
 */
export interface StreamViewer {
  userId: string;
  deviceId: string;
  rooms: Set<string>;
  logs: Map<string, MembershipChange[]>;
  ephemeralFrom: Map<string, number>;
}

/** The viewer as of now: joined rooms, their membership logs and, for replay, stretch starts. */
export async function loadViewer(
  rooms: RoomRepository,
  stream: StreamRepository,
  userId: string,
  deviceId: string,
  forReplay: boolean,
): Promise<StreamViewer> {
  const joined = (await rooms.roomsOf(userId)).filter((m) => m.membership === 'join').map((m) => m.room_id);
  const logs = await stream.membershipLogs(userId, joined);
  const ephemeralFrom = forReplay ? await stream.lastOwnMembershipPositions(userId, joined) : new Map<string, number>();
  return { userId, deviceId, rooms: new Set(joined), logs, ephemeralFrom };
}

/** Whether the viewer may receive this note at this point of the walk. */
export function admits(viewer: StreamViewer, note: StreamNote): boolean {
  if (!isFor(note, viewer.userId, viewer.deviceId, viewer.rooms)) return false;
  const roomId = note.room_id;
  if (note.user_id === viewer.userId) return true;
  // Presence, profile and device-list notes: only from a room shared at the time of the note.
  if (roomId === null) {
    if (note.room_ids === null) return true;
    return note.room_ids.some((r) => viewer.rooms.has(r) && note.position >= (viewer.ephemeralFrom.get(r) ?? 0));
  }
  if (note.kind === 'event') {
    const event = note.data.event as { seq?: unknown } | undefined;
    if (!event || !Number.isInteger(event.seq) || (event.seq as number) < 1) return false;
    const visibility = note.data.visibility;
    // A note that does not say which visibility applied is judged by the strictest one.
    const vis = (typeof visibility === 'string' && HISTORY_VISIBILITIES.has(visibility) ? visibility : 'joined') as HistoryVisibility;
    return canSee(viewer.logs.get(roomId) ?? [], event.seq as number, vis);
  }
  if (EPHEMERAL_ROOM_KINDS.has(note.kind)) return note.position >= (viewer.ephemeralFrom.get(roomId) ?? 0);
  return true;
}

/**
 * Applies the viewer's own membership events as the walk passes them. Returns the rooms
 * joined and left, for callers that index connections by room.
 */
export function track(viewer: StreamViewer, note: StreamNote): { joined: string | null; left: string | null } {
  const none = { joined: null, left: null };
  if (note.kind !== 'event' || note.user_id !== viewer.userId || note.room_id === null) return none;
  const event = note.data.event as { type?: string; state_key?: string; seq?: number; content?: { membership?: unknown } } | undefined;
  if (event?.type !== 'room.member' || event.state_key !== viewer.userId || typeof event.seq !== 'number') return none;
  const roomId = note.room_id;
  const membership = event.content?.membership as Membership;
  const log = viewer.logs.get(roomId) ?? [];
  // The log loaded at the start may already hold this change (replay passes older ones).
  if ((log.at(-1)?.seq ?? 0) < event.seq) {
    log.push({ seq: event.seq, membership });
    viewer.logs.set(roomId, log);
  }
  if (membership === 'join' && !viewer.rooms.has(roomId)) {
    viewer.rooms.add(roomId);
    viewer.ephemeralFrom.set(roomId, note.position);
    return { joined: roomId, left: null };
  }
  if (membership !== 'join' && viewer.rooms.has(roomId)) {
    viewer.rooms.delete(roomId);
    return { joined: null, left: roomId };
  }
  return none;
}
