import { type AdminReport, parseUserId } from '@parley/schemas';
import { badRequest, forbidden, notFound, ParleyError } from '../../errors.js';
import type { ReportRepository } from '../../repositories/admin/reports.js';
import type { EventRepository } from '../../repositories/events.js';
import type { RoomRepository } from '../../repositories/rooms.js';
import type { UserRepository } from '../../repositories/users.js';
import type { Clock } from '../clock.js';
import type { AuthContext } from '../sessions.js';

// A reporter may file this many reports per hour (a flood of reports is itself abuse).
export const REPORTS_PER_HOUR = 20;

/** Users report messages and users; admins work the queue (assign, resolve) with time-to-resolve figures. */
export class ReportService {
  constructor(
    private readonly serverName: string,
    private readonly repo: ReportRepository,
    private readonly rooms: RoomRepository,
    private readonly events: EventRepository,
    private readonly users: UserRepository,
    private readonly clock: Clock,
  ) {}

  async #budget(reporter: string): Promise<void> {
    if ((await this.repo.recentFrom(reporter, this.clock.now() - 3600_000)) >= REPORTS_PER_HOUR) {
      throw new ParleyError(429, 'PARLEY_RATE_LIMITED', `at most ${REPORTS_PER_HOUR} reports an hour`, { retryAfterMs: 3600_000 });
    }
  }

  /** A message the reporter can see (they are joined to its room) → a report with a snapshot of it. */
  async reportEvent(auth: AuthContext, roomId: string, eventId: string, reason: string): Promise<AdminReport> {
    if ((await this.rooms.membership(roomId, auth.userId)) !== 'join') throw forbidden('you are not in this room');
    const event = await this.events.find(eventId);
    if (!event || event.room_id !== roomId) throw notFound(`no event ${eventId} in ${roomId}`);
    if (event.sender === auth.userId) throw badRequest('PARLEY_INVALID_PARAM', 'eventId: you cannot report your own message', 'eventId');
    await this.#budget(auth.userId);
    return this.repo.insert({
      reporter: auth.userId,
      kind: 'event',
      room_id: roomId,
      event_id: eventId,
      target_user_id: event.sender,
      reason,
      event_snapshot: { type: event.type, sender: event.sender, origin_ts: Number(event.origin_ts), content: event.event.content },
      created_ts: this.clock.now(),
    });
  }

  async reportUser(auth: AuthContext, userId: string, reason: string): Promise<AdminReport> {
    const parsed = parseUserId(userId);
    if (!parsed) throw badRequest('PARLEY_INVALID_PARAM', 'userId is not a user ID', 'userId');
    if (userId === auth.userId) throw badRequest('PARLEY_INVALID_PARAM', 'userId: you cannot report yourself', 'userId');
    if (parsed.server === this.serverName && !(await this.users.findById(userId))) throw notFound(`no user ${userId}`);
    await this.#budget(auth.userId);
    return this.repo.insert({
      reporter: auth.userId,
      kind: 'user',
      room_id: null,
      event_id: null,
      target_user_id: userId,
      reason,
      event_snapshot: null,
      created_ts: this.clock.now(),
    });
  }

  list(state: 'open' | 'resolved' | 'all', limit: number, before?: number) {
    return this.repo.list(state, limit, before);
  }

  async get(id: number): Promise<AdminReport> {
    const report = await this.repo.find(id);
    if (!report) throw notFound(`no report ${id}`);
    return report;
  }

  async assign(id: number, assignee: string | null): Promise<AdminReport> {
    if (assignee !== null) {
      const user = await this.users.findById(assignee);
      if (!user?.is_admin) throw badRequest('PARLEY_INVALID_PARAM', 'assignee must be an admin of this server', 'assignee');
    }
    const report = await this.repo.assign(id, assignee, this.clock.now());
    if (!report) throw notFound(`no report ${id}`);
    return report;
  }

  async resolve(id: number, by: string, resolution: string): Promise<AdminReport> {
    const report = await this.repo.resolve(id, by, resolution, this.clock.now());
    if (report) return report;
    await this.get(id);
    throw new ParleyError(409, 'PARLEY_INVALID_PARAM', `report ${id} is already resolved`);
  }

  /** Open count, oldest open, and median / 90th percentile time-to-resolve over the last 30 days. */
  figures() {
    return this.repo.figures(this.clock.now() - 30 * 86_400_000);
  }
}
