import {
  check,
  DeviceKeysQueryResponse,
  type DeviceListAnswer,
  type DeviceListEdu,
  type KeyClaimRequest,
  KeyClaimResponse,
  parseUserId,
} from '@parley/schemas';
import type { Db } from '../db/database.js';
import { ParleyError } from '../errors.js';
import type { DeviceListRepository } from '../repositories/e2e-keys.js';
import type { RoomRepository } from '../repositories/rooms.js';
import type { Clock } from '../services/clock.js';
import type { DeviceListService, RemoteDeviceLists } from '../services/keys/device-lists.js';
import type { KeyPackageService, RemoteKeyClaims } from '../services/keys/key-packages.js';
import { remoteFailure } from './remote-errors.js';
import type { FederationContext } from './setup.js';

// Answers are small (≤ 1000 key packages of ≤ 8 KiB, or 100 lists of ≤ 100 devices).
const CLAIM_MAX_BYTES = 12 * 1024 * 1024;
const QUERY_MAX_BYTES = 4 * 1024 * 1024;

export interface FederatedKeysDeps {
  fed: Pick<FederationContext, 'client' | 'serverName'>;
  rooms: RoomRepository;
  lists: DeviceListRepository;
  packages: KeyPackageService;
  deviceLists: DeviceListService;
  clock: Clock;
  /** Schedules delivery to these servers (after the rows are committed). */
  notify: (servers: Iterable<string>) => void;
  /** Device-list changes live as long as any outbox row. */
  ttlMs: number;
}

/**
 * E2E keys across servers (docs/protocol.md): `user/keys/claim` and `user/keys/query` asked of a
 * user's server on behalf of our clients, and device-list changes of our users pushed to every
 * server sharing a room with them through the outbox — durable, latest per user wins — so a
 * server that was down during a change still hears of it.
 */
export class FederatedKeys implements RemoteKeyClaims, RemoteDeviceLists {
  constructor(private readonly d: FederatedKeysDeps) {}

  attach(): void {
    this.d.packages.remote = this;
    this.d.deviceLists.remote = this;
  }

  stop(): void {
    this.d.packages.remote = null;
    this.d.deviceLists.remote = null;
  }

  async claim(server: string, users: KeyClaimRequest['users']): Promise<KeyClaimResponse['key_packages']> {
    let body: unknown;
    try {
      const res = await this.d.fed.client.request({
        destination: server,
        method: 'POST',
        path: '/federation/v1/user/keys/claim',
        body: { users },
        maxBytes: CLAIM_MAX_BYTES,
      });
      body = res.body;
    } catch (err) {
      throw remoteFailure(err, server, 'key packages');
    }
    const parsed = check(KeyClaimResponse, body);
    if (!parsed.ok) throw new ParleyError(502, 'PARLEY_UNAVAILABLE', `${server} answered a key claim with a malformed body`);
    // Only what was asked, of users of that server.
    const out: KeyClaimResponse['key_packages'] = {};
    for (const [userId, byDevice] of Object.entries(parsed.value.key_packages)) {
      const asked = users[userId];
      if (!asked || parseUserId(userId)?.server !== server) continue;
      const kept = Object.fromEntries(Object.entries(byDevice).filter(([device]) => asked.length === 0 || asked.includes(device)));
      if (Object.keys(kept).length > 0) out[userId] = kept;
    }
    return out;
  }

  async query(server: string, users: string[]): Promise<Record<string, DeviceListAnswer>> {
    let body: unknown;
    try {
      const res = await this.d.fed.client.request({
        destination: server,
        method: 'POST',
        path: '/federation/v1/user/keys/query',
        body: { users },
        maxBytes: QUERY_MAX_BYTES,
      });
      body = res.body;
    } catch (err) {
      throw remoteFailure(err, server, 'device lists');
    }
    const parsed = check(DeviceKeysQueryResponse, body);
    if (!parsed.ok) throw new ParleyError(502, 'PARLEY_UNAVAILABLE', `${server} answered a device-list query with a malformed body`);
    const out: Record<string, DeviceListAnswer> = {};
    for (const userId of users) {
      const answer = parsed.value.device_lists[userId];
      // A list signed for someone else is not this user's list.
      if (answer && answer.user_id === userId && (answer.device_list === null || answer.device_list.user_id === userId))
        out[userId] = answer;
    }
    return out;
  }

  /** Every other server with a joined member in a room the user is joined to. */
  private async serversSharingWith(userId: string, trx: Db): Promise<string[]> {
    const servers = new Set<string>();
    for (const m of await this.d.rooms.roomsOf(userId, trx)) {
      if (m.membership !== 'join') continue;
      for (const s of await this.d.rooms.memberServers(m.room_id, trx)) servers.add(s);
    }
    servers.delete(this.d.fed.serverName);
    return [...servers];
  }

  async announce(answer: DeviceListAnswer, trx: Db): Promise<void> {
    const servers = await this.serversSharingWith(answer.user_id, trx);
    if (servers.length === 0) return;
    const edu: DeviceListEdu = { type: 'device_list', user_id: answer.user_id, answer };
    await this.d.lists.queueAnnouncement(servers, `device_list ${answer.user_id}`, edu, this.d.clock.now(), this.d.ttlMs, trx);
    const tx = trx as unknown as { executionPromise?: Promise<unknown> };
    void tx.executionPromise?.then(
      () => this.d.notify(servers),
      () => {},
    );
  }

  /** The `device_list` EDU from `origin`: null when applied, else why not. */
  async receive(origin: string, edu: DeviceListEdu): Promise<string | null> {
    if (edu.answer.user_id !== edu.user_id) return 'answer.user_id does not match user_id';
    return this.d.deviceLists.receiveRemote(origin, edu.answer);
  }
}
