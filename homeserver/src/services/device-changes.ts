import type { Db } from '../db/database.js';
import type { Logger } from '../logger.js';
import type { RoomRepository } from '../repositories/rooms.js';
import type { ControlMessage, StreamBus, StreamWriter } from './stream-bus.js';
import type { AccessTokenCache } from './token-cache.js';

/**
 * What follows a change to a user's devices: open streams of revoked devices close at once
 * (on every process), and the user and everyone sharing a room with them get a
 * `device_list` frame (E2E clients refetch that user's device keys).
 */
export class DeviceChanges {
  constructor(
    private readonly db: Db,
    private readonly rooms: RoomRepository,
    private readonly writer: StreamWriter,
    private readonly bus: StreamBus,
    private readonly log: Logger,
    /** This process's cache of signed-in tokens: emptied for the user before anyone is told. */
    private readonly tokenCache: AccessTokenCache | null = null,
  ) {}

  /**
   * Resolves once the other processes have been sent the revocation (await it before
   * answering, so the revoked token is refused on the very next request wherever it lands).
   */
  revoked(userId: string, deviceId: string): Promise<void> {
    const sent = this.send({ type: 'revoke_device', user_id: userId, device_id: deviceId });
    this.changed(userId);
    return sent;
  }

  /** The account's flags (admin, deactivated) changed: no process keeps the old ones. */
  authChanged(userId: string): Promise<void> {
    return this.send({ type: 'auth_changed', user_id: userId });
  }

  /**
   * Set by E2E keys: a device signed in or out. Drops a gone device's key packages and
   * announces the change to other servers through the outbox (durable once queued).
   */
  onChange: ((userId: string) => Promise<void>) | null = null;

  /** Every device of the user except `exceptDeviceId` (all when omitted). */
  revokedAll(userId: string, exceptDeviceId?: string): Promise<void> {
    const sent = this.send(
      exceptDeviceId
        ? { type: 'revoke_user', user_id: userId, except_device_id: exceptDeviceId }
        : { type: 'revoke_user', user_id: userId },
    );
    this.changed(userId);
    return sent;
  }

  /** Access tokens replaced by a refresh: streams opened with them end (the device stays). */
  tokensReplaced(userId: string, tokenIds: string[]): Promise<void> {
    if (tokenIds.length === 0) return Promise.resolve();
    return this.send({ type: 'revoke_tokens', user_id: userId, token_ids: tokenIds });
  }

  private send(msg: ControlMessage): Promise<void> {
    this.tokenCache?.onControl(msg);
    return this.bus.control(msg);
  }

  added(userId: string): void {
    this.changed(userId);
  }

  /** Best effort and off the request path: a lost device_list frame only delays a key refresh. */
  private changed(userId: string): void {
    const onChange = this.onChange;
    if (onChange) {
      onChange(userId).catch((err) => this.log.warn({ err }, 'device list change could not be announced'));
      return;
    }
    (async () => {
      const joined = (await this.rooms.roomsOf(userId)).filter((m) => m.membership === 'join').map((m) => m.room_id);
      await this.writer.writeNow(this.db, [
        {
          kind: 'device_list',
          room_id: null,
          private: false,
          user_id: userId,
          device_id: null,
          room_ids: joined,
          data: { user_id: userId },
        },
      ]);
    })().catch((err) => this.log.warn({ err }, 'device list frame failed'));
  }
}
