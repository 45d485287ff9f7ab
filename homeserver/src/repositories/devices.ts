import type { Db } from '../db/database.js';

export interface DeviceRow {
  id: number;
  user_id: string;
  device_id: string;
  display_name: string | null;
  created_ts: number;
  last_seen_ts: number | null;
  last_seen_ip: string | null;
}

export class DeviceRepository {
  constructor(private readonly db: Db) {}

  async find(userId: string, deviceId: string, trx: Db = this.db): Promise<DeviceRow | undefined> {
    return trx<DeviceRow>('devices').where({ user_id: userId, device_id: deviceId }).first();
  }

  async findByPk(pk: number, trx: Db = this.db): Promise<DeviceRow | undefined> {
    return trx<DeviceRow>('devices').where({ id: pk }).first();
  }

  async listForUser(userId: string, trx: Db = this.db): Promise<DeviceRow[]> {
    return trx<DeviceRow>('devices').where({ user_id: userId }).orderBy('created_ts', 'asc');
  }

  /** Inserts a device; returns undefined if (user, device_id) already exists. */
  async insert(row: Omit<DeviceRow, 'id'>, trx: Db = this.db): Promise<DeviceRow | undefined> {
    const [inserted] = await trx<DeviceRow>('devices').insert(row).onConflict(['user_id', 'device_id']).ignore().returning('*');
    return inserted;
  }

  async rename(userId: string, deviceId: string, displayName: string): Promise<DeviceRow | undefined> {
    const [row] = await this.db<DeviceRow>('devices')
      .where({ user_id: userId, device_id: deviceId })
      .update({ display_name: displayName })
      .returning('*');
    return row;
  }

  /** Deleting a device deletes its access and refresh tokens (ON DELETE CASCADE). */
  async delete(userId: string, deviceId: string, trx: Db = this.db): Promise<boolean> {
    return (await trx('devices').where({ user_id: userId, device_id: deviceId }).delete()) > 0;
  }

  async deleteByPk(pk: number, trx: Db = this.db): Promise<void> {
    await trx('devices').where({ id: pk }).delete();
  }

  async deleteAllExcept(userId: string, keepPk: number | null, trx: Db = this.db): Promise<string[]> {
    const q = trx<DeviceRow>('devices').where({ user_id: userId });
    if (keepPk !== null) q.whereNot({ id: keepPk });
    const rows = await q.delete().returning('device_id');
    return rows.map((r) => r.device_id);
  }

  async touch(pk: number, ts: number, ip: string): Promise<void> {
    await this.db('devices').where({ id: pk }).update({ last_seen_ts: ts, last_seen_ip: ip });
  }
}
