import type { Frame, SyncResponse } from '@parley/schemas';
import { badRequest, unauthorized } from '../errors.js';
import { frameFor, isFor } from '../gateway/frames.js';
import type { EventRepository } from '../repositories/events.js';
import type { RoomRepository } from '../repositories/rooms.js';
import type { StreamRepository } from '../repositories/stream.js';
import type { AuthContext } from './sessions.js';
import { hydrate, revocationOf, type StreamBus } from './stream-bus.js';
import { admits, loadViewer, track } from './stream-view.js';

const BATCH = 500;

/**
 * `GET /api/v1/sync`: the stream's frames by long-poll, with the same positions and the same
 * visibility rules as the WebSocket (stream-view.ts). A poll that waits ends at once, with a
 * 401, when its token is revoked or replaced.
 */
export class SyncService {
  constructor(
    private readonly stream: StreamRepository,
    private readonly events: EventRepository,
    private readonly rooms: RoomRepository,
    private readonly bus: StreamBus,
    /** Which of these access tokens still exist. */
    private readonly liveTokens: (tokenIds: string[]) => Promise<Set<string>>,
    private readonly now: () => number,
  ) {}

  async sync(auth: AuthContext, since: number | undefined, timeoutMs: number, signal: AbortSignal): Promise<SyncResponse> {
    const edge = this.bus.position;
    if (since === undefined) return { frames: [], next: edge, reset: true };
    if (since > edge) throw badRequest('PARLEY_INVALID_PARAM', `since ${since} is ahead of the stream (${edge})`, 'since');
    // Listen before reading, so a note written between the read and the wait still wakes us.
    const rooms = new Set((await this.rooms.roomsOf(auth.userId)).filter((m) => m.membership === 'join').map((m) => m.room_id));
    let wake: (() => void) | null = null;
    let woken = false;
    let revoked = false;
    const offNotes = this.bus.onNote((note) => {
      if (!isFor(note, auth.userId, auth.deviceId, rooms)) return;
      woken = true;
      wake?.();
    });
    const offControl = this.bus.onControl((msg) => {
      if (!revocationOf(msg, auth)) return;
      revoked = true;
      wake?.();
    });
    let first: SyncResponse;
    try {
      first = await this.collect(auth, since);
      if (first.frames.length > 0 || first.reset || timeoutMs === 0) return first;
      // Never wait past the token's own expiry.
      const wait = Math.min(timeoutMs, Math.max(0, (auth.tokenExpiresTs ?? Number.POSITIVE_INFINITY) - this.now()));
      if (!woken && !revoked)
        await new Promise<void>((resolve) => {
          const done = () => {
            clearTimeout(timer);
            signal.removeEventListener('abort', done);
            resolve();
          };
          const timer = setTimeout(done, wait);
          wake = done;
          signal.addEventListener('abort', done);
        });
    } finally {
      offNotes();
      offControl();
    }
    // The token may have died while we waited (a lost pub/sub message included): check it.
    if (revoked || !(await this.liveTokens([auth.tokenId])).has(auth.tokenId))
      throw unauthorized('PARLEY_UNKNOWN_TOKEN', 'access token is unknown or was revoked');
    return this.collect(auth, first.next);
  }

  private async collect(auth: AuthContext, since: number): Promise<SyncResponse> {
    const edge = this.bus.position;
    const viewer = await loadViewer(this.rooms, this.stream, auth.userId, auth.deviceId, true);
    const queried = new Set(viewer.rooms);
    const rows = await this.stream.forDevice(auth.userId, auth.deviceId, [...queried], since, edge, BATCH);
    // The horizon moves before rows go: read after the rows, it tells whether any were missing.
    if (since < (await this.stream.prunedThrough())) return { frames: [], next: edge, reset: true };
    const notes = await hydrate(rows, this.events);
    const frames: Frame[] = [];
    let next = since;
    let complete = notes.length < BATCH;
    for (const note of notes) {
      if (admits(viewer, note)) {
        const frame = frameFor(note, auth.deviceId);
        if (frame) frames.push(frame);
      }
      next = note.position;
      // After joining a room, what follows in it was not in this query: stop here.
      const { joined } = track(viewer, note);
      if (joined && !queried.has(joined)) {
        complete = false;
        break;
      }
    }
    // Nothing more for this device up to the edge: the next poll starts there.
    if (complete) next = edge;
    return { frames, next, reset: false };
  }
}
