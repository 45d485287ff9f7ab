import type { Frame, SyncResponse } from '@parley/schemas';
import { badRequest } from '../errors.js';
import { frameFor, isFor } from '../gateway/frames.js';
import type { EventRepository } from '../repositories/events.js';
import type { RoomRepository } from '../repositories/rooms.js';
import type { StreamRepository } from '../repositories/stream.js';
import type { AuthContext } from './sessions.js';
import { hydrate, type StreamBus } from './stream-bus.js';

const BATCH = 500;

/** `GET /api/v1/sync`: the stream's frames by long-poll, with the same positions. */
export class SyncService {
  constructor(
    private readonly stream: StreamRepository,
    private readonly events: EventRepository,
    private readonly rooms: RoomRepository,
    private readonly bus: StreamBus,
  ) {}

  async sync(auth: AuthContext, since: number | undefined, timeoutMs: number, signal: AbortSignal): Promise<SyncResponse> {
    const edge = this.bus.position;
    if (since === undefined) return { frames: [], next: edge, reset: true };
    if (since > edge) throw badRequest('PARLEY_INVALID_PARAM', `since ${since} is ahead of the stream (${edge})`, 'since');
    // Listen before reading, so a note written between the read and the wait still wakes us.
    const rooms = new Set(await this.joined(auth.userId));
    let wake: (() => void) | null = null;
    let woken = false;
    const off = this.bus.onNote((note) => {
      if (!isFor(note, auth.userId, auth.deviceId, rooms)) return;
      woken = true;
      wake?.();
    });
    let first: SyncResponse;
    try {
      first = await this.collect(auth, since);
      if (first.frames.length > 0 || timeoutMs === 0) return first;
      if (!woken)
        await new Promise<void>((resolve) => {
          const done = () => {
            clearTimeout(timer);
            signal.removeEventListener('abort', done);
            resolve();
          };
          const timer = setTimeout(done, timeoutMs);
          wake = done;
          signal.addEventListener('abort', done);
        });
    } finally {
      off();
    }
    return this.collect(auth, first.next);
  }

  private async joined(userId: string): Promise<string[]> {
    return (await this.rooms.roomsOf(userId)).filter((m) => m.membership === 'join').map((m) => m.room_id);
  }

  private async collect(auth: AuthContext, since: number): Promise<SyncResponse> {
    const edge = this.bus.position;
    const rooms = await this.joined(auth.userId);
    const notes = await hydrate(await this.stream.forDevice(auth.userId, auth.deviceId, rooms, since, edge, BATCH), this.events);
    const frames: Frame[] = [];
    let next = since;
    let complete = notes.length < BATCH;
    for (const note of notes) {
      const frame = frameFor(note, auth.deviceId);
      if (frame) frames.push(frame);
      next = note.position;
      const ev =
        note.kind === 'event' ? (note.data.event as { type?: string; state_key?: string; content?: { membership?: string } }) : null;
      // After joining a room, what follows in it was not in this query: stop here.
      if (
        ev?.type === 'room.member' &&
        ev.state_key === auth.userId &&
        ev.content?.membership === 'join' &&
        !rooms.includes(note.room_id ?? '')
      ) {
        complete = false;
        break;
      }
    }
    // Nothing more for this device up to the edge: the next poll starts there.
    if (complete) next = edge;
    return { frames, next, reset: false };
  }
}
