import type { PresenceState } from '@parley/schemas';
import type { Redis } from 'ioredis';
import type { Db } from '../db/database.js';
import { forbidden } from '../errors.js';
import type { RoomRepository } from '../repositories/rooms.js';
import type { PresenceRepository } from '../repositories/stream.js';
import type { Clock } from './clock.js';
import type { StreamWriter } from './stream-bus.js';

/** Counts a user's open streams across every process of the server. */
export interface ConnectionTracker {
  add(userId: string): Promise<void>;
  /** Returns whether the user still has a stream open anywhere. */
  remove(userId: string): Promise<boolean>;
  stop(): Promise<void>;
}

export class MemoryConnectionTracker implements ConnectionTracker {
  private readonly counts = new Map<string, number>();
  async add(userId: string): Promise<void> {
    this.counts.set(userId, (this.counts.get(userId) ?? 0) + 1);
  }
  async remove(userId: string): Promise<boolean> {
    const n = (this.counts.get(userId) ?? 1) - 1;
    if (n <= 0) this.counts.delete(userId);
    else this.counts.set(userId, n);
    return n > 0;
  }
  async stop(): Promise<void> {}
}

const ALIVE_TTL_MS = 30_000;

/**
 * Per-process counts in one Redis hash per user; a process that dies stops refreshing its
 * `alive` key and its counts stop counting, so nobody stays online forever after a crash.
 */
export class RedisConnectionTracker implements ConnectionTracker {
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly redis: Redis,
    private readonly processId: string,
  ) {
    const beat = () => this.redis.set(`presence:alive:${processId}`, '1', 'PX', ALIVE_TTL_MS).catch(() => {});
    void beat();
    this.timer = setInterval(beat, ALIVE_TTL_MS / 3);
    this.timer.unref();
  }

  async add(userId: string): Promise<void> {
    await this.redis.hincrby(`presence:conns:${userId}`, this.processId, 1);
  }

  async remove(userId: string): Promise<boolean> {
    const key = `presence:conns:${userId}`;
    await this.redis.hincrby(key, this.processId, -1);
    const counts = await this.redis.hgetall(key);
    let open = 0;
    for (const [proc, n] of Object.entries(counts)) {
      if (Number(n) <= 0) continue;
      if (proc === this.processId || (await this.redis.exists(`presence:alive:${proc}`))) open += Number(n);
    }
    return open > 0;
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.redis.del(`presence:alive:${this.processId}`).catch(() => {});
  }
}

/**
 * Presence (online / idle / offline, with last-active): online while a stream is open,
 * idle when the client says so, offline when its last stream closes. Frames go to the user
 * and to everyone who shares a room with them. Off when disabled in config.
 */
export class PresenceService {
  /** Set when federation is on: tells servers sharing a room with the user. */
  federate: ((userId: string, presence: PresenceState, lastActiveTs: number) => void) | null = null;

  constructor(
    private readonly db: Db,
    private readonly repo: PresenceRepository,
    private readonly rooms: RoomRepository,
    private readonly writer: StreamWriter,
    private readonly tracker: ConnectionTracker,
    private readonly clock: Clock,
    private readonly enabled: boolean,
  ) {}

  async connected(userId: string): Promise<void> {
    if (!this.enabled) return;
    await this.tracker.add(userId);
    await this.set(userId, 'online');
  }

  async disconnected(userId: string, stillHereLocally: boolean): Promise<void> {
    if (!this.enabled) return;
    const stillAnywhere = await this.tracker.remove(userId);
    if (!stillHereLocally && !stillAnywhere) await this.set(userId, 'offline');
  }

  /**
   * `GET /api/v1/presence/:userId`: a user's presence is shared only with people who share a
   * room with them (as on the stream). Unknown users answer the same as strangers.
   */
  async getFor(viewerId: string, userId: string): Promise<{ presence: PresenceState; last_active_ts: number | null }> {
    if (viewerId !== userId && !(await this.repo.shareRoom(viewerId, userId)))
      throw forbidden(`you share no room with ${userId}, so their presence is not shown to you`);
    return this.get(userId);
  }

  async get(userId: string): Promise<{ presence: PresenceState; last_active_ts: number | null }> {
    const row = await this.repo.get(userId);
    return { presence: this.enabled ? (row?.presence ?? 'offline') : 'offline', last_active_ts: row?.last_active_ts ?? null };
  }

  /** `get` of many users at once (one query per thousand users instead of one each). */
  async getMany(userIds: string[]): Promise<Map<string, { presence: PresenceState; last_active_ts: number | null }>> {
    const out = new Map<string, { presence: PresenceState; last_active_ts: number | null }>();
    for (let i = 0; i < userIds.length; i += 1000) {
      const slice = userIds.slice(i, i + 1000);
      const rows = new Map((await this.repo.getMany(slice)).map((r) => [r.user_id, r]));
      for (const userId of slice) {
        const row = rows.get(userId);
        out.set(userId, { presence: this.enabled ? (row?.presence ?? 'offline') : 'offline', last_active_ts: row?.last_active_ts ?? null });
      }
    }
    return out;
  }

  async set(userId: string, presence: PresenceState): Promise<void> {
    if (!this.enabled) return;
    const previous = await this.repo.get(userId);
    const now = this.clock.now();
    const lastActive = presence === 'online' ? now : (previous?.last_active_ts ?? now);
    if (previous?.presence === presence && presence !== 'online') return;
    // Online → online only refreshes last-active; tell others at most once a minute.
    const announce = previous?.presence !== presence || now - (previous?.last_active_ts ?? 0) > 60_000;
    const joined = (await this.rooms.roomsOf(userId)).filter((m) => m.membership === 'join').map((m) => m.room_id);
    await this.db.transaction(async (trx) => {
      await this.repo.put({ user_id: userId, presence, last_active_ts: lastActive }, trx);
      if (announce) {
        await this.writer.write(trx, [
          {
            kind: 'presence',
            room_id: null,
            private: false,
            user_id: userId,
            device_id: null,
            room_ids: joined,
            data: { user_id: userId, presence, last_active_ts: lastActive },
          },
        ]);
      }
    });
    if (announce) this.federate?.(userId, presence, lastActive);
  }

  /** Presence of a user of another server, as their server reported it (no re-broadcast). */
  async applyRemote(userId: string, presence: PresenceState, lastActiveTs: number | null): Promise<void> {
    if (!this.enabled) return;
    const joined = (await this.rooms.roomsOf(userId)).filter((m) => m.membership === 'join').map((m) => m.room_id);
    await this.db.transaction(async (trx) => {
      await this.repo.put({ user_id: userId, presence, last_active_ts: lastActiveTs }, trx);
      await this.writer.write(trx, [
        {
          kind: 'presence',
          room_id: null,
          private: false,
          user_id: userId,
          device_id: null,
          room_ids: joined,
          data: { user_id: userId, presence, last_active_ts: lastActiveTs },
        },
      ]);
    });
  }

  async stop(): Promise<void> {
    await this.tracker.stop();
  }
}
