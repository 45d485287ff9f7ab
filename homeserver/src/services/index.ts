import type { Redis } from 'ioredis';
import type { Config } from '../config.js';
import type { Db } from '../db/database.js';
import type { Logger } from '../logger.js';
import { DeviceRepository } from '../repositories/devices.js';
import { RegistrationTokenRepository } from '../repositories/registration-tokens.js';
import { TokenRepository } from '../repositories/tokens.js';
import { UserRepository } from '../repositories/users.js';
import { AccountService } from './accounts.js';
import type { Clock } from './clock.js';
import { DeviceService } from './devices.js';
import { PasswordHasher } from './passwords.js';
import { ProfileService } from './profiles.js';
import { MemoryRateLimiter, type RateLimiter, RedisRateLimiter } from './rate-limit.js';
import { SessionService } from './sessions.js';

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
}

export function createServices(config: Config, db: Db, redis: Redis | null, clock: Clock, log: Logger): Services {
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
  };
}
