import { sha256B64u } from '@parley/federation/canonical';
import {
  type ClaimedKeyPackage,
  KEY_PACKAGE_LOW_WATER_MARK,
  type KeyClaimRequest,
  type KeyClaimResponse,
  type KeyCountResponse,
  type KeyUploadRequest,
  MAX_CLAIM_DEVICES,
  MAX_KEY_PACKAGE_BYTES,
  MAX_KEY_PACKAGES_PER_DEVICE,
  parseUserId,
} from '@parley/schemas';
import type { Db } from '../../db/database.js';
import { badRequest, ParleyError } from '../../errors.js';
import type { DeviceRepository } from '../../repositories/devices.js';
import type { KeyPackageRepository, NewKeyPackage } from '../../repositories/e2e-keys.js';
import type { Clock } from '../clock.js';
import type { AuthContext } from '../sessions.js';
import type { StreamWriter } from '../stream-bus.js';

/** To-device type the server writes to a device whose one-time packages ran low (from the device's own user). */
export const KEY_PACKAGES_LOW_TYPE = 'parley.key_packages_low';

type Claims = KeyClaimRequest['users'];
type Claimed = KeyClaimResponse['key_packages'];

/** Claims of other servers' users go over federation (set when federation runs). */
export interface RemoteKeyClaims {
  claim(server: string, users: Claims): Promise<Claimed>;
}

/** Returns the decoded size, or throws naming the field when it is over the cap. */
function checkSize(b64: string, field: string): void {
  // The schema caps the text; this checks what it decodes to (base64url: 3 bytes per 4 chars).
  if (Math.floor((b64.length * 3) / 4) > MAX_KEY_PACKAGE_BYTES)
    throw badRequest('PARLEY_INVALID_PARAM', `${field} is larger than ${MAX_KEY_PACKAGE_BYTES} bytes`, field);
  if (b64.length % 4 === 1) throw badRequest('PARLEY_INVALID_PARAM', `${field} is not valid base64url`, field);
}

/**
 * MLS key packages (docs/protocol.md): each device uploads one-time packages and one last-resort
 * package. A claim hands each one-time package out exactly once (even under concurrent
 * claims) and falls back to the last-resort package, which stays. The server never reads them.
 */
export class KeyPackageService {
  remote: RemoteKeyClaims | null = null;

  constructor(
    private readonly db: Db,
    private readonly packages: KeyPackageRepository,
    private readonly devices: DeviceRepository,
    private readonly clock: Clock,
    private readonly serverName: string,
    private readonly writer: StreamWriter,
  ) {}

  async upload(auth: AuthContext, req: KeyUploadRequest): Promise<KeyCountResponse> {
    const fresh: NewKeyPackage[] = [];
    for (const [i, kp] of (req.key_packages ?? []).entries()) {
      checkSize(kp, `key_packages.${i}`);
      fresh.push({ ref: sha256B64u(kp), key_package: kp, last_resort: false });
    }
    if (req.last_resort !== undefined) {
      checkSize(req.last_resort, 'last_resort');
      fresh.push({ ref: sha256B64u(req.last_resort), key_package: req.last_resort, last_resort: true });
    }
    await this.db.transaction(async (trx) => {
      // One upload per device at a time, so the cap holds under concurrent uploads.
      await trx.raw('SELECT pg_advisory_xact_lock(hashtext(?))', [`key_packages ${auth.userId} ${auth.deviceId}`]);
      const before = await this.packages.stock(auth.userId, auth.deviceId, trx);
      const adding = fresh.filter((p) => !p.last_resort).length;
      if (before.one_time + adding > MAX_KEY_PACKAGES_PER_DEVICE)
        throw new ParleyError(
          400,
          'PARLEY_TOO_MANY_KEY_PACKAGES',
          `the device holds ${before.one_time} one-time key packages; ${adding} more would exceed ${MAX_KEY_PACKAGES_PER_DEVICE}`,
          { field: 'key_packages' },
        );
      await this.packages.add(auth.userId, auth.deviceId, fresh, this.clock.now(), trx);
    });
    return this.count(auth);
  }

  async count(auth: AuthContext): Promise<KeyCountResponse> {
    const stock = await this.packages.stock(auth.userId, auth.deviceId);
    return { one_time_remaining: stock.one_time, has_last_resort: stock.last_resort, low_water_mark: KEY_PACKAGE_LOW_WATER_MARK };
  }

  /** A client's claim: our users here, other servers' users over federation, in parallel. */
  async claim(req: KeyClaimRequest): Promise<KeyClaimResponse> {
    const total = Object.values(req.users).reduce((n, d) => n + Math.max(1, d.length), 0);
    if (total > MAX_CLAIM_DEVICES) throw badRequest('PARLEY_INVALID_PARAM', `at most ${MAX_CLAIM_DEVICES} devices per claim`, 'users');
    const local: Claims = {};
    const byServer = new Map<string, Claims>();
    for (const [userId, deviceIds] of Object.entries(req.users)) {
      const server = parseUserId(userId)?.server;
      if (!server) throw badRequest('PARLEY_INVALID_PARAM', `users: ${userId.slice(0, 80)} is not a user ID`, 'users');
      if (server === this.serverName) local[userId] = deviceIds;
      else byServer.set(server, { ...byServer.get(server), [userId]: deviceIds });
    }
    const answer: KeyClaimResponse = { key_packages: await this.claimLocal(local) };
    const failures: NonNullable<KeyClaimResponse['failures']> = {};
    await Promise.all(
      [...byServer].map(async ([server, users]) => {
        if (!this.remote) {
          failures[server] = { code: 'PARLEY_UNAVAILABLE', message: 'federation is off' };
          return;
        }
        try {
          Object.assign(answer.key_packages, await this.remote.claim(server, users));
        } catch (err) {
          const e = err as { code?: string; message?: string };
          failures[server] = { code: e.code ?? 'PARLEY_UNAVAILABLE', message: String(e.message ?? err).slice(0, 300) };
        }
      }),
    );
    if (Object.keys(failures).length > 0) answer.failures = failures;
    return answer;
  }

  /** Claims for users of this server (client API and the federation endpoint). */
  async claimLocal(users: Claims): Promise<Claimed> {
    const out: Claimed = {};
    for (const [userId, asked] of Object.entries(users)) {
      if (parseUserId(userId)?.server !== this.serverName) continue;
      const signedIn = new Set((await this.devices.listForUser(userId)).map((d) => d.device_id));
      const wanted = asked.length > 0 ? asked : await this.packages.devicesWithPackages(userId);
      const byDevice: Record<string, ClaimedKeyPackage> = {};
      for (const deviceId of wanted) {
        // A signed-out device must not be added to any group.
        if (!signedIn.has(deviceId)) continue;
        const got = await this.packages.claim(userId, deviceId);
        if (!got) continue;
        const stock = await this.packages.stock(userId, deviceId);
        byDevice[deviceId] = { ...got, remaining: stock.one_time };
        // Crossing the low-water mark (or running out) tells the device, durably: it refills
        // when it next connects even if it was offline while others claimed.
        if (!got.last_resort && (stock.one_time === KEY_PACKAGE_LOW_WATER_MARK - 1 || stock.one_time === 0))
          await this.tellLow(userId, deviceId, stock.one_time);
      }
      if (Object.keys(byDevice).length > 0) out[userId] = byDevice;
    }
    return out;
  }

  private async tellLow(userId: string, deviceId: string, remaining: number): Promise<void> {
    await this.writer.writeNow(this.db, [
      {
        kind: 'to_device',
        room_id: null,
        private: false,
        user_id: userId,
        device_id: deviceId,
        room_ids: null,
        data: {
          sender: userId,
          sender_device: deviceId,
          type: KEY_PACKAGES_LOW_TYPE,
          content: { one_time_remaining: remaining, low_water_mark: KEY_PACKAGE_LOW_WATER_MARK },
        },
      },
    ]);
  }
}
