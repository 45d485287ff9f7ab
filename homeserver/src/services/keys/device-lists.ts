import { canonicalJson } from '@parley/federation/canonical';
import { publicKeyFromB64u, verifyBytes } from '@parley/federation/keys';
import { type DeviceKeysQueryResponse, type DeviceListAnswer, parseUserId, type SignedDeviceList } from '@parley/schemas';
import type { Db } from '../../db/database.js';
import { badRequest, forbidden, ParleyError } from '../../errors.js';
import type { Logger } from '../../logger.js';
import type { DeviceRepository } from '../../repositories/devices.js';
import type { DeviceListRepository } from '../../repositories/e2e-keys.js';
import type { RoomRepository } from '../../repositories/rooms.js';
import type { NewNote } from '../../repositories/stream.js';
import type { Clock } from '../clock.js';
import type { AuthContext } from '../sessions.js';
import type { StreamWriter } from '../stream-bus.js';

/** Other servers' users (set when federation runs). */
export interface RemoteDeviceLists {
  /** Asks `server` for the lists of `users` (all of that server). */
  query(server: string, users: string[]): Promise<Record<string, DeviceListAnswer>>;
  /** Queues `answer` for every other server sharing a room with the user, in `trx` (durable). */
  announce(answer: DeviceListAnswer, trx: Db): Promise<void>;
}

/**
 * Verifies the list's self-signature (Ed25519 by `user_signing_key` over the canonical list
 * without `signature`). This proves only that the list is whole and unaltered since the key
 * holder signed it; clients decide whether they trust that key (they pin it and warn on change).
 */
export function deviceListSignatureOk(list: SignedDeviceList): boolean {
  try {
    const { signature, ...unsigned } = list;
    const key = publicKeyFromB64u(list.user_signing_key);
    const sig = Buffer.from(signature, 'base64url');
    if (sig.toString('base64url') !== signature) return false;
    return verifyBytes(new Uint8Array(sig), new TextEncoder().encode(canonicalJson(unsigned)), key);
  } catch {
    return false;
  }
}

/**
 * Signed device lists (docs/protocol.md): users upload the list their user signing key signed;
 * versions only grow. A change (new list, device signed in or out) reaches the user's own
 * devices and local users sharing a room with them as a `device_list` stream frame, and other
 * servers sharing a room as a durable outbox item carrying the whole answer.
 */
export class DeviceListService {
  remote: RemoteDeviceLists | null = null;

  constructor(
    private readonly db: Db,
    private readonly lists: DeviceListRepository,
    private readonly devices: DeviceRepository,
    private readonly rooms: RoomRepository,
    private readonly writer: StreamWriter,
    private readonly clock: Clock,
    private readonly serverName: string,
    private readonly log: Logger,
  ) {}

  async put(auth: AuthContext, list: SignedDeviceList): Promise<{ version: number }> {
    if (list.user_id !== auth.userId) throw forbidden('device_list.user_id must be your own user ID');
    const ids = list.devices.map((d) => d.device_id);
    if (new Set(ids).size !== ids.length) throw badRequest('PARLEY_INVALID_PARAM', 'devices lists a device twice', 'devices');
    if (!deviceListSignatureOk(list))
      throw badRequest('PARLEY_INVALID_PARAM', 'signature does not verify with user_signing_key over the list', 'signature');
    await this.db.transaction(async (trx) => {
      const stored = await this.lists.findLocal(auth.userId, trx, true);
      if (stored && list.version <= stored.version) {
        if (list.version === stored.version && canonicalJson(stored.signed) === canonicalJson(list)) return;
        throw new ParleyError(
          409,
          'PARLEY_VERSION_ROLLBACK',
          `version ${list.version} is not newer than the stored version ${stored.version}`,
          { field: 'version' },
        );
      }
      await this.lists.putLocal(list, this.clock.now(), trx);
      await this.changedIn(auth.userId, list, trx);
    });
    return { version: list.version };
  }

  /** A device signed in or out: same notices as a new list (the signed list is unchanged). */
  async devicesChanged(userId: string): Promise<void> {
    await this.db.transaction(async (trx) => {
      const stored = await this.lists.findLocal(userId, trx);
      await this.changedIn(userId, stored?.signed ?? null, trx);
    });
  }

  // Every read here goes through `trx`: a read on the pool from inside a transaction needs a
  // second connection, and a burst of sign-ins (each one here) then holds every connection
  // while waiting for one (join-large's set-up answered 503 after the 10 s acquire timeout).
  private async changedIn(userId: string, list: SignedDeviceList | null, trx: Db): Promise<void> {
    const devices = (await this.devices.listForUser(userId, trx)).map((d) => d.device_id);
    const answer: DeviceListAnswer = { user_id: userId, device_list: list, devices };
    await this.remote?.announce(answer, trx);
    await this.writer.write(trx, [await this.frameNote(userId, trx)]);
  }

  private async frameNote(userId: string, trx: Db): Promise<NewNote> {
    const joined = (await this.rooms.roomsOf(userId, trx)).filter((m) => m.membership === 'join').map((m) => m.room_id);
    const local = parseUserId(userId)?.server === this.serverName;
    return {
      kind: 'device_list',
      room_id: null,
      private: false,
      user_id: local ? userId : null,
      device_id: null,
      room_ids: joined,
      data: { user_id: userId },
    };
  }

  /** What this server says about one of its users. */
  async localAnswer(userId: string): Promise<DeviceListAnswer | undefined> {
    const devices = (await this.devices.listForUser(userId)).map((d) => d.device_id);
    const stored = await this.lists.findLocal(userId);
    if (!stored && devices.length === 0) return undefined;
    return { user_id: userId, device_list: stored?.signed ?? null, devices };
  }

  async query(users: string[]): Promise<DeviceKeysQueryResponse> {
    const answer: DeviceKeysQueryResponse = { device_lists: {} };
    const failures: NonNullable<DeviceKeysQueryResponse['failures']> = {};
    const byServer = new Map<string, string[]>();
    for (const userId of users) {
      const server = parseUserId(userId)?.server;
      if (!server) throw badRequest('PARLEY_INVALID_PARAM', `users: ${userId.slice(0, 80)} is not a user ID`, 'users');
      if (server === this.serverName) {
        const mine = await this.localAnswer(userId);
        if (mine) answer.device_lists[userId] = mine;
      } else byServer.set(server, [...(byServer.get(server) ?? []), userId]);
    }
    await Promise.all(
      [...byServer].map(async ([server, asked]) => {
        let fetched: Record<string, DeviceListAnswer> = {};
        try {
          if (!this.remote) throw new ParleyError(502, 'PARLEY_UNAVAILABLE', 'federation is off');
          fetched = await this.remote.query(server, asked);
          for (const a of Object.values(fetched)) await this.lists.putRemote(server, a, this.clock.now());
        } catch (err) {
          const e = err as { code?: string; message?: string };
          failures[server] = { code: e.code ?? 'PARLEY_UNAVAILABLE', message: String(e.message ?? err).slice(0, 300) };
        }
        // The cache holds the newest version seen (pushed or fetched): a rollback by the
        // remote is answered with what we had; an unreachable server with the last push.
        for (const userId of asked) {
          const cached = await this.lists.findRemote(userId);
          const got = fetched[userId];
          const best =
            cached && (!got || (cached.answer.device_list?.version ?? 0) > (got.device_list?.version ?? 0)) ? cached.answer : got;
          if (best) answer.device_lists[userId] = best;
        }
      }),
    );
    if (Object.keys(failures).length > 0) answer.failures = failures;
    return answer;
  }

  /**
   * A device-list change pushed by `origin` for one of its users: cached unless older than
   * what we hold, then our users sharing a room with that user get a frame. Returns null when
   * applied, else why not.
   */
  async receiveRemote(origin: string, answer: DeviceListAnswer): Promise<string | null> {
    if (parseUserId(answer.user_id)?.server !== origin) return `${origin} may not speak for ${answer.user_id}`;
    const list = answer.device_list;
    if (list && (list.user_id !== answer.user_id || !deviceListSignatureOk(list)))
      return `the device list of ${answer.user_id} is not signed by its user_signing_key`;
    const shares = (await this.rooms.roomsOf(answer.user_id)).some((m) => m.membership === 'join');
    if (!shares) return `${answer.user_id} shares no room with this server`;
    const note = await this.frameNote(answer.user_id, this.db);
    // The cache and the frame together: a reader that sees the new list also gets the frame.
    const stored = await this.db.transaction(async (trx) => {
      if (!(await this.lists.putRemote(origin, answer, this.clock.now(), trx))) return false;
      await this.writer.write(trx, [note]);
      return true;
    });
    if (!stored) this.log.info({ user_id: answer.user_id, origin }, 'ignored an older device list');
    return null;
  }
}
