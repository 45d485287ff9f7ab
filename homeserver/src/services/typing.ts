import type { Db } from '../db/database.js';
import { forbidden } from '../errors.js';
import type { RoomRepository } from '../repositories/rooms.js';
import type { StreamNote } from '../repositories/stream.js';
import type { Clock } from './clock.js';
import type { StreamBus, StreamWriter } from './stream-bus.js';

const DEFAULT_TIMEOUT_MS = 30_000;
// A client refreshing "still typing" more often than this changes nothing anyone sees.
const REFRESH_INTERVAL_MS = 5_000;

/**
 * Typing notices. Every process learns the typing set of each room from the typing frames
 * on the bus; the process that accepted a notice owns its timeout and announces the stop.
 */
export class TypingService {
  private readonly known = new Map<string, string[]>();
  private readonly timers = new Map<string, { timer: NodeJS.Timeout; announcedAt: number }>();
  private readonly off: () => void;
  /** Set when federation is on: tells the room's other servers (about local users only). */
  federate: ((roomId: string, userId: string, typing: boolean, timeoutMs: number) => void) | null = null;

  constructor(
    private readonly db: Db,
    private readonly rooms: RoomRepository,
    private readonly writer: StreamWriter,
    bus: StreamBus,
    private readonly clock: Clock,
  ) {
    this.off = bus.onNote((note: StreamNote) => {
      if (note.kind === 'typing' && note.room_id) this.known.set(note.room_id, note.data.user_ids as string[]);
    });
  }

  async set(userId: string, roomId: string, typing: boolean, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<void> {
    if ((await this.rooms.membership(roomId, userId)) !== 'join') throw forbidden('you are not joined to this room');
    const key = `${roomId}\u0000${userId}`;
    const existing = this.timers.get(key);
    if (existing) clearTimeout(existing.timer);
    if (!typing) {
      this.timers.delete(key);
      return this.announce(roomId, userId, false, timeoutMs);
    }
    const timer = setTimeout(() => {
      this.timers.delete(key);
      this.announce(roomId, userId, false, timeoutMs).catch(() => {});
    }, timeoutMs);
    timer.unref();
    const now = this.clock.now();
    const current = this.known.get(roomId) ?? [];
    if (existing && current.includes(userId) && now - existing.announcedAt < REFRESH_INTERVAL_MS) {
      this.timers.set(key, { timer, announcedAt: existing.announcedAt });
      return;
    }
    this.timers.set(key, { timer, announcedAt: now });
    await this.announce(roomId, userId, true, timeoutMs);
  }

  private async announce(roomId: string, userId: string, typing: boolean, timeoutMs: number): Promise<void> {
    const current = this.known.get(roomId) ?? [];
    const next = typing ? [...new Set([...current, userId])] : current.filter((u) => u !== userId);
    if (!typing && next.length === current.length) return;
    this.known.set(roomId, next);
    await this.writer.writeNow(this.db, [
      {
        kind: 'typing',
        room_id: roomId,
        private: false,
        user_id: null,
        device_id: null,
        room_ids: null,
        data: { room_id: roomId, user_ids: next },
      },
    ]);
    this.federate?.(roomId, userId, typing, timeoutMs);
  }

  stop(): void {
    this.off();
    for (const { timer } of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
  }
}
