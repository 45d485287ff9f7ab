import type { AdminJob } from '@parley/schemas';
import { notFound } from '../../errors.js';
import type { AdminDirectoryRepository } from '../../repositories/admin/directory.js';
import type { RoomRepository } from '../../repositories/rooms.js';
import type { Clock } from '../clock.js';
import type { RoomService } from '../rooms.js';
import type { JobRunner, Progress } from './jobs.js';
import { actingAs } from './users.js';

/** Rooms as an admin sees them: search, members, state, block, shut down and delete. */
export class AdminRooms {
  constructor(
    private readonly serverName: string,
    private readonly directory: AdminDirectoryRepository,
    private readonly rooms: RoomRepository,
    private readonly roomService: RoomService,
    private readonly jobs: JobRunner,
    private readonly clock: Clock,
  ) {
    const handler = (params: Record<string, unknown>, progress: Progress) =>
      this.#shutdown(String(params.roomId), params.delete === true, typeof params.reason === 'string' ? params.reason : null, progress);
    jobs.register('room.shutdown', handler);
    jobs.register('room.delete', handler);
  }

  search(q: string | undefined, limit: number, offset: number) {
    return this.directory.searchRooms(q, limit, offset, this.serverName);
  }

  async get(roomId: string) {
    const room = await this.directory.room(roomId, this.serverName);
    if (!room) throw notFound(`no room ${roomId} on this server`);
    return room;
  }

  async members(roomId: string) {
    await this.get(roomId);
    return this.rooms.members(roomId);
  }

  async state(roomId: string) {
    await this.get(roomId);
    return this.rooms.allStateEvents(roomId);
  }

  async setBlocked(roomId: string, blocked: boolean, by: string, reason: string | null): Promise<void> {
    if (blocked) await this.directory.blockRoom(roomId, by, reason, this.clock.now());
    else if (!(await this.directory.unblockRoom(roomId))) throw notFound(`room ${roomId} is not blocked`);
  }

  blocked() {
    return this.directory.blockedRooms();
  }

  /**
   * Shuts a room down as a job: blocks it (unless asked not to), makes every local member
   * leave (reporting progress: big rooms take a while), then optionally purges it here.
   */
  async shutdown(roomId: string, opts: { delete: boolean; block: boolean; reason: string | null }, by: string): Promise<AdminJob> {
    await this.get(roomId);
    if (opts.block) await this.directory.blockRoom(roomId, by, opts.reason, this.clock.now());
    return this.jobs.start(opts.delete ? 'room.delete' : 'room.shutdown', roomId, by, { roomId, delete: opts.delete, reason: opts.reason });
  }

  async #shutdown(roomId: string, purge: boolean, reason: string | null, progress: Progress) {
    const local = (await this.rooms.members(roomId)).filter(
      (m) =>
        (m.membership === 'join' || m.membership === 'invite' || m.membership === 'knock') && m.user_id.endsWith(`:${this.serverName}`),
    );
    const total = local.length + (purge ? 1 : 0);
    let done = 0;
    const failed: string[] = [];
    progress(0, total);
    for (const m of local) {
      await this.roomService
        .leave(actingAs(m.user_id), roomId, reason ?? 'room shut down by the server administrator')
        .catch(() => failed.push(m.user_id));
      progress(++done, total);
    }
    let purged = false;
    if (purge) {
      purged = await this.directory.purgeRoom(roomId);
      progress(++done, total);
    }
    return { removed: local.length - failed.length, failed, purged };
  }
}
