import { parseUserId, type ToDeviceRequest } from '@parley/schemas';
import type { Db } from '../db/database.js';
import { badRequest } from '../errors.js';
import type { DeviceRepository } from '../repositories/devices.js';
import type { TxnRepository } from '../repositories/room-extras.js';
import type { NewNote } from '../repositories/stream.js';
import type { UserRepository } from '../repositories/users.js';
import type { AuthContext } from './sessions.js';
import type { StreamWriter } from './stream-bus.js';

/**
 * To-device messages (DESIGN §7, ready for E2E): delivered on the target device's stream,
 * resumable like everything else, idempotent per (sender device, txnId). Local users only
 * until federation carries them.
 */
export class ToDeviceService {
  constructor(
    private readonly db: Db,
    private readonly users: UserRepository,
    private readonly devices: DeviceRepository,
    private readonly txns: TxnRepository,
    private readonly writer: StreamWriter,
    private readonly serverName: string,
  ) {}

  async send(auth: AuthContext, type: string, txnId: string, req: ToDeviceRequest): Promise<void> {
    if (await this.txns.find(auth.userId, auth.deviceId, `to_device:${txnId}`)) return;
    const notes: NewNote[] = [];
    for (const [userId, byDevice] of Object.entries(req.messages)) {
      const parsed = parseUserId(userId);
      if (!parsed) throw badRequest('PARLEY_INVALID_PARAM', `messages: ${userId.slice(0, 80)} is not a user ID`, 'messages');
      if (parsed.server !== this.serverName)
        throw badRequest('PARLEY_INVALID_PARAM', `messages: ${userId} is on another server (not federated yet)`, 'messages');
      if (!(await this.users.findById(userId))) continue;
      const known = new Set((await this.devices.listForUser(userId)).map((d) => d.device_id));
      for (const [deviceId, content] of Object.entries(byDevice)) {
        if (deviceId !== '*' && !known.has(deviceId)) continue;
        notes.push({
          kind: 'to_device',
          room_id: null,
          private: false,
          user_id: userId,
          device_id: deviceId === '*' ? null : deviceId,
          room_ids: null,
          data: { sender: auth.userId, sender_device: auth.deviceId, type, content },
        });
      }
    }
    await this.db.transaction(async (trx) => {
      await this.txns.insert(
        { user_id: auth.userId, device_id: auth.deviceId, txn_id: `to_device:${txnId}`, room_id: '', event_id: '', created_ts: Date.now() },
        trx,
      );
      await this.writer.write(trx, notes);
    });
  }
}
