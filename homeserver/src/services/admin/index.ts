import type { Redis } from 'ioredis';
import type { Config } from '../../config.js';
import type { Db } from '../../db/database.js';
import type { Logger } from '../../logger.js';
import { AuditRepository } from '../../repositories/admin/audit.js';
import { AdminDirectoryRepository } from '../../repositories/admin/directory.js';
import { DomainPolicyRepository, type NewPolicy } from '../../repositories/admin/domain-policies.js';
import { JobRepository } from '../../repositories/admin/jobs.js';
import { ReportRepository } from '../../repositories/admin/reports.js';
import { StatsRepository } from '../../repositories/admin/stats.js';
import type { EventRepository } from '../../repositories/events.js';
import { OutboxRepository } from '../../repositories/outbox.js';
import type { RoomRepository } from '../../repositories/rooms.js';
import type { UserRepository } from '../../repositories/users.js';
import type { AccountService } from '../accounts.js';
import type { Clock } from '../clock.js';
import { PasswordHasher } from '../passwords.js';
import type { RoomService } from '../rooms.js';
import type { SessionService } from '../sessions.js';
import { type Actor, AuditLog } from './audit.js';
import { BlocklistSubscriptions } from './blocklists.js';
import { DomainPolicyService, hostOf } from './domain-policy.js';
import { JobRunner } from './jobs.js';
import { AdminMedia } from './media.js';
import { ReportService } from './reports.js';
import { AdminRooms } from './rooms.js';
import { StatsService } from './stats.js';
import { AdminUsers } from './users.js';

/** Everything behind the admin API (admin/README.md). */
export interface AdminServices {
  audit: AuditLog;
  jobs: JobRunner;
  users: AdminUsers;
  rooms: AdminRooms;
  reports: ReportService;
  media: AdminMedia;
  domains: DomainPolicyService;
  blocklists: BlocklistSubscriptions;
  stats: StatsService;
  directory: AdminDirectoryRepository;
  /** Set by the federation listener: asks delivery to drain these destinations now. */
  notifyDelivery: (servers: string[]) => void;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export interface AdminDeps {
  config: Config;
  db: Db;
  redis: Redis | null;
  clock: Clock;
  log: Logger;
  users: UserRepository;
  rooms: RoomRepository;
  events: EventRepository;
  roomService: RoomService;
  accounts: AccountService;
  sessions: SessionService;
}

export function createAdminServices(d: AdminDeps): AdminServices {
  const log = d.log.child({ component: 'admin' });
  const directory = new AdminDirectoryRepository(d.db);
  const jobs = new JobRunner(new JobRepository(d.db), d.clock, log);
  const policyRepo = new DomainPolicyRepository(d.db);
  const domains = new DomainPolicyService(policyRepo, d.clock, log);
  const outbox = new OutboxRepository(d.db);
  const stats = new StatsService(new StatsRepository(d.db), outbox, d.clock, log);
  const blocklists = new BlocklistSubscriptions(d.db, policyRepo, domains, d.clock, log);
  const admin: AdminServices = {
    audit: new AuditLog(new AuditRepository(d.db), d.clock),
    jobs,
    users: new AdminUsers({
      serverName: d.config.server_name,
      directory,
      users: d.users,
      rooms: d.rooms,
      roomService: d.roomService,
      accounts: d.accounts,
      sessions: d.sessions,
      hasher: new PasswordHasher(d.config.auth.argon2),
      jobs,
    }),
    rooms: new AdminRooms(d.config.server_name, directory, d.rooms, d.roomService, jobs, d.clock),
    reports: new ReportService(d.config.server_name, new ReportRepository(d.db), d.rooms, d.events, d.users, d.clock),
    media: new AdminMedia(d.config.data_dir, directory, d.clock),
    domains,
    blocklists,
    stats,
    directory,
    notifyDelivery: () => {},
    async start() {
      if (d.redis) await jobs.useQueue(d.redis, d.config.redis.key_prefix);
      await domains.load();
      domains.startReloading();
      blocklists.startRefreshing();
      stats.start();
    },
    async stop() {
      domains.stop();
      blocklists.stop();
      stats.stop();
      await jobs.stop();
    },
  };
  // A lifted block: forget the backoff its refusals built up and deliver what waited.
  jobs.register('federation.import', async (params, progress) => {
    const actor = params.actor as Actor;
    const result = await domains.importEntries(params.entries as NewPolicy[], actor.userId, progress);
    await admin.audit.record(actor, 'federation.import_done', result.batch, { added: result.added });
    return result;
  });
  domains.onLifted = (lifted) => {
    (async () => {
      const names = (await outbox.destinations()).map((dst) => dst.name);
      const freed = names.filter((n) => lifted.some((dom) => hostOf(n) === dom || hostOf(n).endsWith(`.${dom}`)));
      for (const n of freed) await outbox.resetState(n);
      if (freed.length > 0) admin.notifyDelivery(freed);
    })().catch((err) => log.warn({ err: (err as Error).message }, 'could not restart delivery after a lifted block'));
  };
  return admin;
}
