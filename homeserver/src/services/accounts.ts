import type { LoginRequest, PasswordChangeRequest, RegisterRequest, RegistrationMode, Session } from '@parley/schemas';
import { userId as makeUserId, parseUserId } from '@parley/schemas';
import type { Db } from '../db/database.js';
import { badRequest, forbidden, ParleyError, unauthorized } from '../errors.js';
import type { DeviceRepository, DeviceRow } from '../repositories/devices.js';
import type { RegistrationTokenRepository } from '../repositories/registration-tokens.js';
import type { TokenRepository } from '../repositories/tokens.js';
import type { UserRepository } from '../repositories/users.js';
import type { Clock } from './clock.js';
import type { DeviceChanges } from './device-changes.js';
import type { PasswordHasher } from './passwords.js';
import type { AuthContext, SessionService } from './sessions.js';
import { newDeviceId } from './tokens.js';

export interface AccountDeps {
  db: Db;
  users: UserRepository;
  devices: DeviceRepository;
  registrationTokens: RegistrationTokenRepository;
  tokens: TokenRepository;
  sessions: SessionService;
  hasher: PasswordHasher;
  clock: Clock;
  serverName: string;
  registrationMode: RegistrationMode;
  changes: DeviceChanges;
}

export class AccountService {
  constructor(private readonly deps: AccountDeps) {}

  get registrationMode(): RegistrationMode {
    return this.deps.registrationMode;
  }

  async register(req: RegisterRequest): Promise<Session> {
    const { db, registrationTokens, clock, registrationMode } = this.deps;
    if (registrationMode === 'closed') {
      throw new ParleyError(403, 'PARLEY_REGISTRATION_CLOSED', 'this server does not accept new registrations');
    }
    if (registrationMode === 'token' && !req.registration_token) {
      throw new ParleyError(401, 'PARLEY_REGISTRATION_TOKEN_INVALID', 'registration_token is required on this server');
    }
    // Hash before the transaction: Argon2 is slow and must not hold a connection.
    const passwordHash = await this.deps.hasher.hash(req.password);
    const session = await db.transaction(async (trx) => {
      const now = clock.now();
      if (registrationMode === 'token' && !(await registrationTokens.consume(req.registration_token as string, now, trx))) {
        throw new ParleyError(401, 'PARLEY_REGISTRATION_TOKEN_INVALID', 'registration_token is unknown, used up or expired');
      }
      const userId = makeUserId(req.username, this.deps.serverName);
      const created = await this.deps.users.insert(
        {
          user_id: userId,
          localpart: req.username,
          password_hash: passwordHash,
          is_admin: false,
          deactivated: false,
          displayname: null,
          avatar_url: null,
          created_ts: now,
        },
        trx,
      );
      if (!created) throw new ParleyError(409, 'PARLEY_USER_IN_USE', `the username "${req.username}" is taken`, { field: 'username' });
      const device = await this.createDevice(userId, req.device_name ?? null, trx);
      return this.deps.sessions.session(device, await this.deps.sessions.issue(device, trx));
    });
    this.deps.changes.added(session.user_id);
    return session;
  }

  /** Used by the CLI: no registration mode, optional admin flag. */
  async createUser(localpart: string, password: string, isAdmin: boolean): Promise<string> {
    const userId = makeUserId(localpart, this.deps.serverName);
    const passwordHash = await this.deps.hasher.hash(password);
    const created = await this.deps.users.insert({
      user_id: userId,
      localpart,
      password_hash: passwordHash,
      is_admin: isAdmin,
      deactivated: false,
      displayname: null,
      avatar_url: null,
      created_ts: this.deps.clock.now(),
    });
    if (!created) throw new ParleyError(409, 'PARLEY_USER_IN_USE', `the username "${localpart}" is taken`);
    return userId;
  }

  /** Resolves a login name (localpart or full user ID of this server) to a user ID. */
  localUserId(username: string): string | null {
    if (username.startsWith('@')) {
      const parsed = parseUserId(username);
      return parsed && parsed.server === this.deps.serverName ? username : null;
    }
    return parseUserId(`@${username}:${this.deps.serverName}`) ? makeUserId(username, this.deps.serverName) : null;
  }

  async login(req: LoginRequest): Promise<Session> {
    const userId = this.localUserId(req.username);
    const user = userId ? await this.deps.users.findById(userId) : undefined;
    // Unknown users still pay for one Argon2 verification (no user enumeration by timing).
    const ok = await this.deps.hasher.verify(user?.password_hash ?? null, req.password);
    if (!user || !ok) throw unauthorized('PARLEY_INVALID_CREDENTIALS', 'wrong username or password');
    if (user.deactivated) throw new ParleyError(403, 'PARLEY_USER_DEACTIVATED', 'this account is deactivated');
    const session = await this.deps.db.transaction(async (trx) => {
      let device: DeviceRow | undefined;
      if (req.device_id) {
        device = await this.deps.devices.find(user.user_id, req.device_id, trx);
        if (device) {
          // Re-login on a known device replaces its old tokens.
          await this.deps.tokens.deleteForDevice('access', device.id, trx);
          await this.deps.tokens.deleteForDevice('refresh', device.id, trx);
        } else {
          device = await this.deps.devices.insert(this.deviceRow(user.user_id, req.device_id, req.device_name ?? null), trx);
        }
      }
      device ??= await this.createDevice(user.user_id, req.device_name ?? null, trx);
      if (!device) throw badRequest('PARLEY_INVALID_PARAM', 'device_id could not be used', 'device_id');
      return this.deps.sessions.session(device, await this.deps.sessions.issue(device, trx));
    });
    // A re-login on a known device also replaces its tokens: close its old streams too.
    if (req.device_id) await this.deps.changes.revoked(session.user_id, session.device_id);
    else this.deps.changes.added(session.user_id);
    return session;
  }

  async changePassword(auth: AuthContext, req: PasswordChangeRequest): Promise<void> {
    const user = await this.deps.users.findById(auth.userId);
    if (!user) throw unauthorized('PARLEY_UNKNOWN_TOKEN');
    if (!(await this.deps.hasher.verify(user.password_hash, req.old_password))) {
      throw forbidden('old_password is wrong');
    }
    const hash = await this.deps.hasher.hash(req.new_password);
    await this.deps.db.transaction(async (trx) => {
      await this.deps.users.setPasswordHash(auth.userId, hash, trx);
      if (req.logout_other_devices !== false) await this.deps.devices.deleteAllExcept(auth.userId, auth.devicePk, trx);
    });
    if (req.logout_other_devices !== false) await this.deps.changes.revokedAll(auth.userId, auth.deviceId);
  }

  private deviceRow(userId: string, deviceId: string, name: string | null): Omit<DeviceRow, 'id'> {
    return {
      user_id: userId,
      device_id: deviceId,
      display_name: name,
      created_ts: this.deps.clock.now(),
      last_seen_ts: null,
      last_seen_ip: null,
    };
  }

  private async createDevice(userId: string, name: string | null, trx: Db): Promise<DeviceRow> {
    // 26^10 IDs: a collision is astronomically rare, but retry rather than fail.
    for (let attempt = 0; attempt < 5; attempt++) {
      const device = await this.deps.devices.insert(this.deviceRow(userId, newDeviceId(), name), trx);
      if (device) return device;
    }
    throw new Error('could not allocate a device ID');
  }
}
