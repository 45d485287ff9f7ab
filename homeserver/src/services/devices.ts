import type { Device } from '@parley/schemas';
import { notFound } from '../errors.js';
import type { DeviceRepository, DeviceRow } from '../repositories/devices.js';
import type { DeviceChanges } from './device-changes.js';
import type { AuthContext } from './sessions.js';

function toWire(row: DeviceRow, currentPk: number): Device {
  return {
    device_id: row.device_id,
    display_name: row.display_name,
    created_ts: row.created_ts,
    last_seen_ts: row.last_seen_ts,
    last_seen_ip: row.last_seen_ip,
    current: row.id === currentPk,
  };
}

export class DeviceService {
  constructor(
    private readonly devices: DeviceRepository,
    private readonly changes: DeviceChanges,
  ) {}

  async list(auth: AuthContext): Promise<Device[]> {
    return (await this.devices.listForUser(auth.userId)).map((d) => toWire(d, auth.devicePk));
  }

  async rename(auth: AuthContext, deviceId: string, displayName: string): Promise<Device> {
    const row = await this.devices.rename(auth.userId, deviceId, displayName);
    if (!row) throw notFound(`no device ${deviceId} on this account`);
    return toWire(row, auth.devicePk);
  }

  /** Deleting a device revokes all its tokens in the same statement (cascade). */
  async delete(auth: AuthContext, deviceId: string): Promise<void> {
    if (!(await this.devices.delete(auth.userId, deviceId))) throw notFound(`no device ${deviceId} on this account`);
    await this.changes.revoked(auth.userId, deviceId);
  }
}
