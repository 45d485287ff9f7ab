import type { Session, TokenPair } from '@parley/schemas';
import type { Db } from '../db/database.js';
import { unauthorized } from '../errors.js';
import type { Logger } from '../logger.js';
import type { DeviceRepository, DeviceRow } from '../repositories/devices.js';
import type { TokenRepository } from '../repositories/tokens.js';
import type { Clock } from './clock.js';
import type { DeviceChanges } from './device-changes.js';
import type { AccessTokenCache } from './token-cache.js';
import { mintToken, parseToken, secretMatches } from './tokens.js';

/** Who is calling, established once per request by the auth middleware. */
export interface AuthContext {
  userId: string;
  deviceId: string;
  devicePk: number;
  tokenId: string;
  isAdmin: boolean;
  /** When the access token expires (streams opened with it end then). */
  tokenExpiresTs?: number;
}

export interface SessionSettings {
  accessTokenTtlMs: number;
  refreshTokenTtlMs: number;
}

// Last-seen is written at most this often per device, off the request path.
const TOUCH_INTERVAL_MS = 60_000;

export class SessionService {
  constructor(
    private readonly db: Db,
    private readonly tokens: TokenRepository,
    private readonly devices: DeviceRepository,
    private readonly clock: Clock,
    private readonly settings: SessionSettings,
    private readonly log: Logger,
    private readonly changes: DeviceChanges,
    /** Recently authenticated tokens (revocations empty it through `changes`); none: always read. */
    private readonly cache: AccessTokenCache | null = null,
  ) {}

  /** Issues a fresh access/refresh pair for a device (inside the caller's transaction). */
  async issue(device: DeviceRow, trx: Db = this.db): Promise<TokenPair> {
    const now = this.clock.now();
    const access = mintToken('pat');
    const refresh = mintToken('prt');
    await this.tokens.insert(
      'access',
      {
        id: access.id,
        device_pk: device.id,
        secret_hash: access.secretHash,
        created_ts: now,
        expires_ts: now + this.settings.accessTokenTtlMs,
      },
      trx,
    );
    await this.tokens.insert(
      'refresh',
      {
        id: refresh.id,
        device_pk: device.id,
        secret_hash: refresh.secretHash,
        created_ts: now,
        expires_ts: now + this.settings.refreshTokenTtlMs,
      },
      trx,
    );
    return { access_token: access.token, refresh_token: refresh.token, expires_in_ms: this.settings.accessTokenTtlMs };
  }

  session(device: DeviceRow, pair: TokenPair): Session {
    return { user_id: device.user_id, device_id: device.device_id, ...pair };
  }

  async authenticate(accessToken: string, ip: string): Promise<AuthContext> {
    const parsed = parseToken(accessToken, 'pat');
    if (!parsed) throw unauthorized('PARLEY_UNKNOWN_TOKEN', 'access token is malformed or unknown');
    let row = this.cache?.get(parsed.id);
    if (!row) {
      const read = this.cache?.load(parsed.id, (id) => this.tokens.findAccess(id));
      row = read ? await read.row : await this.tokens.findAccess(parsed.id);
      if (read && row && !row.deactivated && secretMatches(parsed.secret, row.secret_hash)) this.cache?.put(row, read.epoch);
    }
    if (!row || !secretMatches(parsed.secret, row.secret_hash)) {
      throw unauthorized('PARLEY_UNKNOWN_TOKEN', 'access token is unknown or was revoked');
    }
    if (row.deactivated) throw unauthorized('PARLEY_UNKNOWN_TOKEN', 'the account is deactivated');
    const now = this.clock.now();
    if (row.expires_ts <= now) throw unauthorized('PARLEY_TOKEN_EXPIRED', 'access token has expired; use the refresh token');
    if (row.last_seen_ts === null || now - row.last_seen_ts > TOUCH_INTERVAL_MS) {
      // The cached row remembers the touch, so a cached token is not touched on every request.
      row.last_seen_ts = now;
      this.devices.touch(row.device_pk, now, ip).catch((err) => this.log.warn({ err }, 'could not record device last-seen'));
    }
    return {
      userId: row.user_id,
      deviceId: row.device_id,
      devicePk: row.device_pk,
      tokenId: row.id,
      isAdmin: row.is_admin,
      tokenExpiresTs: Number(row.expires_ts),
    };
  }

  /**
   * Exchanges a refresh token for a new pair. Each refresh token works once: presenting
   * one that was already exchanged means a copy leaked, so the device is signed out.
   */
  async refresh(refreshToken: string): Promise<TokenPair> {
    const parsed = parseToken(refreshToken, 'prt');
    if (!parsed) throw unauthorized('PARLEY_UNKNOWN_TOKEN', 'refresh token is malformed or unknown');
    const now = this.clock.now();
    const outcome = await this.db.transaction(async (trx) => {
      const row = await this.tokens.findRefresh(parsed.id, trx);
      if (!row || !secretMatches(parsed.secret, row.secret_hash)) return { kind: 'unknown' as const };
      if (row.used_ts !== null) {
        const stolen = await this.devices.findByPk(row.device_pk, trx);
        await this.devices.deleteByPk(row.device_pk, trx);
        return { kind: 'reused' as const, devicePk: row.device_pk, userId: stolen?.user_id, deviceId: stolen?.device_id };
      }
      if (row.expires_ts <= now) return { kind: 'expired' as const };
      await this.tokens.markRefreshUsed(row.id, now, trx);
      // The old access token dies with the refresh: a stolen one stops working as soon
      // as the real client refreshes, and so do the streams it opened.
      const replaced = await this.tokens.deleteForDevice('access', row.device_pk, trx);
      const device = await this.devices.findByPk(row.device_pk, trx);
      if (!device) return { kind: 'unknown' as const };
      return { kind: 'ok' as const, pair: await this.issue(device, trx), userId: device.user_id, replaced };
    });
    switch (outcome.kind) {
      case 'ok':
        await this.changes.tokensReplaced(outcome.userId, outcome.replaced);
        return outcome.pair;
      case 'reused':
        this.log.warn({ device_pk: outcome.devicePk }, 'refresh token reused; device signed out');
        if (outcome.userId && outcome.deviceId) await this.changes.revoked(outcome.userId, outcome.deviceId);
        throw unauthorized('PARLEY_UNKNOWN_TOKEN', 'refresh token was already used; the device has been signed out');
      case 'expired':
        throw unauthorized('PARLEY_UNKNOWN_TOKEN', 'refresh token has expired; sign in again');
      case 'unknown':
        throw unauthorized('PARLEY_UNKNOWN_TOKEN', 'refresh token is unknown or was revoked');
    }
  }

  /** Signs out the calling device: the device and all its tokens are gone at once. */
  async logout(auth: AuthContext): Promise<void> {
    await this.devices.deleteByPk(auth.devicePk);
    await this.changes.revoked(auth.userId, auth.deviceId);
  }

  async logoutAll(userId: string): Promise<void> {
    await this.devices.deleteAllExcept(userId, null);
    await this.changes.revokedAll(userId);
  }

  /** The account's admin or deactivated flag changed: sign-ins cached anywhere are dropped. */
  async accountChanged(userId: string): Promise<void> {
    await this.changes.authChanged(userId);
  }

  /** The sessions clock (token expiry is judged by it). */
  now(): number {
    return this.clock.now();
  }

  /** Which of these access tokens still exist (not revoked, not purged). */
  async liveTokens(tokenIds: string[]): Promise<Set<string>> {
    return this.tokens.existingAccess(tokenIds);
  }

  async purgeExpired(): Promise<number> {
    return this.tokens.deleteExpired(this.clock.now());
  }
}
