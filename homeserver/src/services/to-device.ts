import { randomUUID } from 'node:crypto';
import { parseUserId, type ToDeviceRequest } from '@parley/schemas';
import type { Db } from '../db/database.js';
import { badRequest } from '../errors.js';
import type { DeviceRepository } from '../repositories/devices.js';
import type { TxnRepository } from '../repositories/room-extras.js';
import type { NewNote } from '../repositories/stream.js';
import type { UserRepository } from '../repositories/users.js';
import type { AuthContext } from './sessions.js';
import type { StreamWriter } from './stream-bus.js';

type Messages = ToDeviceRequest['messages'];

/** Queues to-device messages for users of another server (set when federation is on). */
export interface RemoteToDevice {
  /** In the caller's transaction: durable, like room events. */
  enqueue(
    trx: Db,
    server: string,
    message: { sender: string; sender_device: string; message_type: string; message_id: string; messages: Messages },
  ): Promise<void>;
}

/**
 * To-device messages (docs/protocol.md, ready for E2E): delivered on the target device's stream,
 * resumable like everything else, idempotent per (sender device, txnId). Messages for users
 * of other servers go through the federation outbox, one item per server.
 */
export class ToDeviceService {
  remote: RemoteToDevice | null = null;

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
    const local: Messages = {};
    const remote = new Map<string, Messages>();
    for (const [userId, byDevice] of Object.entries(req.messages)) {
      const parsed = parseUserId(userId);
      if (!parsed) throw badRequest('PARLEY_INVALID_PARAM', `messages: ${userId.slice(0, 80)} is not a user ID`, 'messages');
      if (parsed.server === this.serverName) {
        local[userId] = byDevice;
        continue;
      }
      if (!this.remote)
        throw badRequest('PARLEY_INVALID_PARAM', `messages: ${userId} is on another server (federation is off)`, 'messages');
      const forServer = remote.get(parsed.server) ?? {};
      forServer[userId] = byDevice;
      remote.set(parsed.server, forServer);
    }
    const notes = await this.localNotes(auth.userId, auth.deviceId, type, local);
    await this.db.transaction(async (trx) => {
      await this.txns.insert(
        { user_id: auth.userId, device_id: auth.deviceId, txn_id: `to_device:${txnId}`, room_id: '', event_id: '', created_ts: Date.now() },
        trx,
      );
      for (const [server, messages] of remote) {
        await this.remote?.enqueue(trx, server, {
          sender: auth.userId,
          sender_device: auth.deviceId,
          message_type: type,
          message_id: randomUUID(),
          messages,
        });
      }
      await this.writer.write(trx, notes);
    });
  }

  /**
   * Messages another server relayed for our users. `firstTime` records the message ID in the
   * same transaction, so a redelivered message is written to no stream twice.
   */
  async deliverRemote(
    sender: string,
    senderDevice: string,
    type: string,
    messages: Messages,
    firstTime: (trx: Db) => Promise<boolean>,
  ): Promise<number> {
    const notes = await this.localNotes(sender, senderDevice, type, messages);
    return this.db.transaction(async (trx) => {
      if (!(await firstTime(trx))) return 0;
      await this.writer.write(trx, notes);
      return notes.length;
    });
  }

  /** One note per known target device ('*': every device of the user); unknown users are skipped. */
  private async localNotes(sender: string, senderDevice: string, type: string, messages: Messages): Promise<NewNote[]> {
    const notes: NewNote[] = [];
    for (const [userId, byDevice] of Object.entries(messages)) {
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
          data: { sender, sender_device: senderDevice, type, content },
        });
      }
    }
    return notes;
  }
}
