import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Config } from '../config.js';
import type { Db } from '../db/database.js';
import type { BootstrapService } from '../federation/bootstrap.js';
import type { Logger } from '../logger.js';
import type { RelayStatus } from '../relay/relay-wiring.js';
import { DeviceRepository } from '../repositories/devices.js';
import { DeviceListRepository, KeyBackupRepository, KeyPackageRepository, MlsEpochRepository } from '../repositories/e2e-keys.js';
import { EventRepository } from '../repositories/events.js';
import { MailboxRepository } from '../repositories/mailbox.js';
import { RegistrationTokenRepository } from '../repositories/registration-tokens.js';
import { AliasRepository, ReadMarkerRepository, RemoteInviteRepository, TxnRepository } from '../repositories/room-extras.js';
import { RoomRepository } from '../repositories/rooms.js';
import { PresenceRepository, StreamRepository } from '../repositories/stream.js';
import { TokenRepository } from '../repositories/tokens.js';
import { UserRepository } from '../repositories/users.js';
import { UpdateService } from '../updates/service.js';
import { AccountService } from './accounts.js';
import { type AdminServices, createAdminServices } from './admin/index.js';
import type { Clock } from './clock.js';
import { DeviceChanges } from './device-changes.js';
import { DeviceService } from './devices.js';
import { KeyBackupService } from './keys/backup.js';
import { DeviceListService } from './keys/device-lists.js';
import { KeyPackageService } from './keys/key-packages.js';
import { MailboxService } from './mailbox.js';
import { createMediaService, type MediaService } from './media.js';
import { PasswordHasher } from './passwords.js';
import { MemoryConnectionTracker, PresenceService, RedisConnectionTracker } from './presence.js';
import { ProfileService } from './profiles.js';
import { enforce, MemoryRateLimiter, type RateLimiter, RedisRateLimiter } from './rate-limit.js';
import { RoomLog, type SigningIdentity } from './room-log.js';
import { RoomSequencer } from './room-sequencer.js';
import { RoomViews } from './room-views.js';
import { RoomService } from './rooms.js';
import { SearchService } from './search.js';
import { SessionService } from './sessions.js';
import { StreamBus, StreamWriter } from './stream-bus.js';
import { StreamRetention } from './stream-retention.js';
import { SyncService } from './sync.js';
import { TimelineService } from './timeline.js';
import { ToDeviceService } from './to-device.js';
import { AccessTokenCache } from './token-cache.js';
import { TypingService } from './typing.js';

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
  markers: ReadMarkerRepository;
  timeline: TimelineService;
  roomViews: RoomViews;
  search: SearchService;
  media: MediaService;
  streamRepo: StreamRepository;
  bus: StreamBus;
  writer: StreamWriter;
  typing: TypingService;
  presence: PresenceService;
  toDevice: ToDeviceService;
  sync: SyncService;
  streamRetention: StreamRetention;
  /** E2E key material (docs/protocol.md), opaque to the server. */
  keys: { packages: KeyPackageService; deviceLists: DeviceListService; backup: KeyBackupService };
  admin: AdminServices;
  /** Bootstrap node lists; set when federation runs. */
  bootstrap: BootstrapService | null;
  /** Anchor relay state for the admin view, while federation runs (homeserver/src/relay). */
  relay: { status(): RelayStatus } | null;
  /** Signed update mirror (docs/protocol.md). */
  updates: UpdateService;
  /** Mailbox queues for E2E clients (docs/protocol.md); no account involved. */
  mailbox: MailboxService;
}

// Declines of invites to rooms this server is not in (queued for the host while it is down).
const REMOTE_DECLINE_RULE = { burst: 20, per_minute: 10 };

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
  const roomRepo = new RoomRepository(db);
  const eventRepo = new EventRepository(db);
  const txns = new TxnRepository(db);
  const aliases = new AliasRepository(db);
  const markers = new ReadMarkerRepository(db);
  const streamRepo = new StreamRepository(db);

  const bus = new StreamBus(streamRepo, eventRepo, redis, log);
  const writer = new StreamWriter(streamRepo, bus, clock);
  // Signed-in tokens, trusted for 30 s unless revoked: revocations from any process empty it.
  const tokenCache = new AccessTokenCache(clock, undefined, () => bus.controlLive());
  bus.onControl((msg) => tokenCache.onControl(msg));
  bus.onControlGap(() => tokenCache.clear());
  const changes = new DeviceChanges(db, roomRepo, writer, bus, log, tokenCache);
  const joinedRooms = async (userId: string) =>
    (await roomRepo.roomsOf(userId)).filter((m) => m.membership === 'join').map((m) => m.room_id);

  const sessions = new SessionService(
    db,
    tokens,
    devices,
    clock,
    { accessTokenTtlMs: config.auth.access_token_ttl_ms, refreshTokenTtlMs: config.auth.refresh_token_ttl_ms },
    log,
    changes,
    tokenCache,
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
    changes,
  });
  const profiles = new ProfileService(users, async (profile) => {
    await writer.writeNow(db, [
      {
        kind: 'profile',
        room_id: null,
        private: false,
        user_id: profile.user_id,
        device_id: null,
        room_ids: await joinedRooms(profile.user_id),
        data: profile,
      },
    ]);
  });
  const roomLog = new RoomLog(roomRepo, eventRepo, identity, clock, writer);
  roomLog.mls = new MlsEpochRepository(db);
  const keys = {
    packages: new KeyPackageService(db, new KeyPackageRepository(db), devices, clock, config.server_name, writer),
    deviceLists: new DeviceListService(db, new DeviceListRepository(db), devices, roomRepo, writer, clock, config.server_name, log),
    backup: new KeyBackupService(new KeyBackupRepository(db), clock),
  };
  // A device signed in or out: its gone packages go, and the list change reaches everyone.
  changes.onChange = async (userId) => {
    const signedIn = (await devices.listForUser(userId)).map((d) => d.device_id);
    await new KeyPackageRepository(db).deleteDevicesExcept(userId, signedIn);
    await keys.deviceLists.devicesChanged(userId);
  };
  const timeline = new TimelineService(roomRepo, eventRepo, txns, markers, clock, writer, db);
  const sequencer = new RoomSequencer(db, roomRepo, roomLog, log);
  const rooms = new RoomService({
    db,
    sequencer,
    rooms: roomRepo,
    events: eventRepo,
    txns,
    aliases,
    users,
    log: roomLog,
    clock,
    serverName: config.server_name,
  });
  const tracker = redis ? new RedisConnectionTracker(redis, randomUUID()) : new MemoryConnectionTracker();
  let rateLimiter: RateLimiter | null = null;
  if (config.rate_limits.enabled) rateLimiter = redis ? new RedisRateLimiter(redis, clock) : new MemoryRateLimiter(clock);
  if (rateLimiter) rooms.remoteDeclineGate = (userId) => enforce(rateLimiter, `remote-decline:${userId}`, REMOTE_DECLINE_RULE);
  const admin = createAdminServices({
    config,
    db,
    redis,
    clock,
    log,
    users,
    rooms: roomRepo,
    events: eventRepo,
    roomService: rooms,
    accounts,
    sessions,
  });
  rooms.blocked = (roomId) => admin.directory.isRoomBlocked(roomId);
  return {
    admin,
    bootstrap: null,
    relay: null,
    updates: new UpdateService(config, clock, log.child({ component: 'updates' })),
    mailbox: new MailboxService(
      db,
      new MailboxRepository(db),
      config.mailbox,
      clock,
      rateLimiter,
      redis,
      log.child({ component: 'mailbox' }),
    ),
    config,
    db,
    redis,
    log,
    clock,
    accounts,
    sessions,
    devices: new DeviceService(devices, changes),
    profiles,
    registrationTokens,
    users,
    rateLimiter,
    identity,
    rooms,
    roomLog,
    roomRepo,
    eventRepo,
    markers,
    timeline,
    roomViews: new RoomViews(roomRepo, eventRepo, aliases, markers, timeline, clock, config.server_name, new RemoteInviteRepository(db)),
    search: new SearchService(roomRepo, eventRepo, timeline),
    media: createMediaService(config, db, clock, log, (userId) =>
      enforce(rateLimiter, `media:remote:${userId}`, config.rate_limits.remote_media_per_user),
    ),
    streamRepo,
    bus,
    writer,
    typing: new TypingService(db, roomRepo, writer, bus, clock),
    presence: new PresenceService(db, new PresenceRepository(db), roomRepo, writer, tracker, clock, config.presence.enabled),
    sync: new SyncService(
      streamRepo,
      eventRepo,
      roomRepo,
      bus,
      (ids) => sessions.liveTokens(ids),
      () => clock.now(),
    ),
    toDevice: new ToDeviceService(db, users, devices, txns, writer, config.server_name),
    streamRetention: new StreamRetention(streamRepo, clock, config.stream.retention_ms, log),
    keys,
  };
}
