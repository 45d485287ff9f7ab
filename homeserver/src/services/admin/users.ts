import { randomBytes } from 'node:crypto';
import { type AdminCreateUserRequest, type AdminJob, type AdminUser, parseUserId } from '@parley/schemas';
import { badRequest, notFound, ParleyError } from '../../errors.js';
import type { AdminDirectoryRepository } from '../../repositories/admin/directory.js';
import type { RoomRepository } from '../../repositories/rooms.js';
import type { UserRepository } from '../../repositories/users.js';
import type { AccountService } from '../accounts.js';
import type { PasswordHasher } from '../passwords.js';
import type { RoomService } from '../rooms.js';
import type { AuthContext, SessionService } from '../sessions.js';
import type { JobRunner, Progress } from './jobs.js';

export interface AdminUsersDeps {
  serverName: string;
  directory: AdminDirectoryRepository;
  users: UserRepository;
  rooms: RoomRepository;
  roomService: RoomService;
  accounts: AccountService;
  sessions: SessionService;
  hasher: PasswordHasher;
  jobs: JobRunner;
}

const generatedPassword = () => randomBytes(15).toString('base64url');

/** An AuthContext for acting as a user of this server without a device (admin-driven leaves). */
export function actingAs(userId: string): AuthContext {
  return { userId, deviceId: '', devicePk: 0, tokenId: '', isAdmin: false };
}

/** Accounts as an admin manages them. */
export class AdminUsers {
  constructor(private readonly d: AdminUsersDeps) {
    d.jobs.register('user.leave_rooms', (params, progress) => this.#leaveRooms(String(params.userId), progress));
  }

  async #leaveRooms(userId: string, progress: Progress): Promise<{ left: number; failed: string[] }> {
    const rooms = await this.d.rooms.roomsOf(userId);
    let done = 0;
    const failed: string[] = [];
    progress(0, rooms.length);
    for (const r of rooms) {
      await this.d.roomService.leave(actingAs(userId), r.room_id).catch(() => failed.push(r.room_id));
      progress(++done, rooms.length);
    }
    return { left: rooms.length - failed.length, failed };
  }

  /** A user ID of this server that exists; 400 naming `field` or 404. */
  async local(userId: string, field = 'userId'): Promise<AdminUser> {
    const parsed = parseUserId(userId);
    if (!parsed) throw badRequest('PARLEY_INVALID_PARAM', `${field} is not a user ID`, field);
    if (parsed.server !== this.d.serverName) throw badRequest('PARLEY_INVALID_PARAM', `${field} is not a user of this server`, field);
    const user = await this.d.directory.user(userId);
    if (!user) throw notFound(`no user ${userId}`);
    return user;
  }

  search(q: string | undefined, limit: number, offset: number, filter: 'all' | 'admins' | 'deactivated') {
    return this.d.directory.searchUsers(q, limit, offset, filter);
  }

  async details(userId: string) {
    const user = await this.local(userId);
    const [sessions, rooms, media] = await Promise.all([
      this.d.directory.sessions(userId),
      this.d.directory.roomsOfUser(userId),
      this.d.directory.listMedia({ uploader: userId, limit: 100, offset: 0, order: 'newest' }),
    ]);
    return { user, sessions, rooms, media: media.media, media_total: media.total };
  }

  async create(req: AdminCreateUserRequest): Promise<{ user_id: string; password?: string }> {
    const password = req.password ?? generatedPassword();
    try {
      const userId = await this.d.accounts.createUser(req.username, password, req.admin === true);
      return req.password ? { user_id: userId } : { user_id: userId, password };
    } catch (err) {
      if (err instanceof ParleyError && err.code === 'PARLEY_USER_IN_USE')
        throw new ParleyError(409, err.code, err.message, { field: 'username' });
      throw err;
    }
  }

  /**
   * Deactivation ends every session at once: devices and their tokens are deleted and open
   * streams closed (on every process), then, as a job, the account leaves its rooms.
   */
  async deactivate(userId: string, by: string, leaveRooms: boolean): Promise<{ job: AdminJob | null }> {
    if (userId === by) throw badRequest('PARLEY_INVALID_PARAM', 'userId: an admin cannot deactivate their own account here', 'userId');
    await this.local(userId);
    await this.d.directory.setDeactivated(userId, true);
    await this.d.sessions.logoutAll(userId);
    await this.d.sessions.accountChanged(userId);
    if (!leaveRooms) return { job: null };
    const job = await this.d.jobs.start('user.leave_rooms', userId, by, { userId });
    return { job };
  }

  async reactivate(userId: string): Promise<void> {
    await this.local(userId);
    await this.d.directory.setDeactivated(userId, false);
    await this.d.sessions.accountChanged(userId);
  }

  async resetPassword(userId: string, password: string | undefined, logoutDevices: boolean): Promise<{ password?: string }> {
    await this.local(userId);
    const chosen = password ?? generatedPassword();
    await this.d.users.setPasswordHash(userId, await this.d.hasher.hash(chosen));
    if (logoutDevices) await this.d.sessions.logoutAll(userId);
    return password ? {} : { password: chosen };
  }

  async setAdmin(userId: string, admin: boolean, by: string): Promise<void> {
    if (userId === by && !admin)
      throw badRequest('PARLEY_INVALID_PARAM', 'admin: you cannot remove your own admin flag (ask another admin)', 'admin');
    await this.local(userId);
    await this.d.users.setAdmin(userId, admin);
    await this.d.sessions.accountChanged(userId);
  }

  async endSessions(userId: string): Promise<void> {
    await this.local(userId);
    await this.d.sessions.logoutAll(userId);
  }
}
