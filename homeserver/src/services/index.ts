import type { Redis } from 'ioredis';
import type { Config } from '../config.js';
import type { Db } from '../db/database.js';
import type { Logger } from '../logger.js';
import { DeviceRepository } from '../repositories/devices.js';
import { EventRepository } from '../repositories/events.js';
import { RegistrationTokenRepository } from '../repositories/registration-tokens.js';
import { AliasRepository, ReadMarkerRepository, TxnRepository } from '../repositories/room-extras.js';
import { RoomRepository } from '../repositories/rooms.js';
import { TokenRepository } from '../repositories/tokens.js';
import { UserRepository } from '../repositories/users.js';
import { AccountService } from './accounts.js';
import type { Clock } from './clock.js';
import { DeviceService } from './devices.js';
import { createMediaService, type MediaService } from './media.js';
import { PasswordHasher } from './passwords.js';
import { ProfileService } from './profiles.js';
import { MemoryRateLimiter, type RateLimiter, RedisRateLimiter } from './rate-limit.js';
import { RoomLog, type SigningIdentity } from './room-log.js';
import { RoomViews } from './room-views.js';
import { RoomService } from './rooms.js';
import { SearchService } from './search.js';
import { SessionService } from './sessions.js';
import { TimelineService } from './timeline.js';

/** Everything handlers call, wired once per server. */
export interface Services {
  config: Config;
  db: Db;
  redis: Redis | null;
  log: Logger;
  clock: Clock;
  accounts: AccountService;
  sessions: SessionService;
  devices: DeviceService;
  profiles: ProfileService;
  registrationTokens: RegistrationTokenRepository;
  users: UserRepository;
  rateLimiter: RateLimiter | null;
  identity: SigningIdentity;
  rooms: RoomService;
  roomLog: RoomLog;
  roomRepo: RoomRepository;
  eventRepo: EventRepository;
  timeline: TimelineService;
  roomViews: RoomViews;
  search: SearchService;
  media: MediaService;
}

export function createServices(
  config: Config,
  db: Db,
  redis: Redis | null,
  clock: Clock,
  log: Logger,
  identity: SigningIdentity,
): Services {
  const users = new UserRepository(db);
  const devices = new DeviceRepository(db);
  const tokens = new TokenRepository(db);
  const registrationTokens = new RegistrationTokenRepository(db);
  const sessions = new SessionService(
    db,
    tokens,
    devices,
    clock,
    { accessTokenTtlMs: config.auth.access_token_ttl_ms, refreshTokenTtlMs: config.auth.refresh_token_ttl_ms },
    log,
  );
  const accounts = new AccountService({
    db,
    users,
    devices,
    tokens,
    registrationTokens,
    sessions,
    hasher: new PasswordHasher(config.auth.argon2),
    clock,
    serverName: config.server_name,
    registrationMode: config.registration.mode,
  });
  const roomRepo = new RoomRepository(db);
  const eventRepo = new EventRepository(db);
  const txns = new TxnRepository(db);
  const aliases = new AliasRepository(db);
  const markers = new ReadMarkerRepository(db);
  const roomLog = new RoomLog(roomRepo, eventRepo, identity, clock);
  const timeline = new TimelineService(roomRepo, eventRepo, txns, markers, clock);
  const rooms = new RoomService({
    db,
    rooms: roomRepo,
    events: eventRepo,
    txns,
    aliases,
    users,
    log: roomLog,
    clock,
    serverName: config.server_name,
  });
  let rateLimiter: RateLimiter | null = null;
  if (config.rate_limits.enabled) rateLimiter = redis ? new RedisRateLimiter(redis, clock) : new MemoryRateLimiter(clock);
  return {
    config,
    db,
    redis,
    log,
    clock,
    accounts,
    sessions,
    devices: new DeviceService(devices),
    profiles: new ProfileService(users),
    registrationTokens,
    users,
    rateLimiter,
    identity,
    rooms,
    roomLog,
    roomRepo,
    eventRepo,
    timeline,
    roomViews: new RoomViews(roomRepo, eventRepo, aliases, markers, timeline, clock, config.server_name),
    search: new SearchService(roomRepo, eventRepo, timeline),
    media: createMediaService(config, db, clock, log),
  };
}
