import type { DeviceListAnswer, SignedDeviceList } from '@parley/schemas';
import type { Db } from '../db/database.js';
import { replaceLatestEdu } from './edus.js';

export interface NewKeyPackage {
  ref: string;
  key_package: string;
  last_resort: boolean;
}

export interface KeyStock {
  one_time: number;
  last_resort: boolean;
}

/** MLS key packages per device: one-time ones are handed out once, the last-resort one is kept. */
export class KeyPackageRepository {
  constructor(private readonly db: Db) {}

  async stock(userId: string, deviceId: string, trx: Db = this.db): Promise<KeyStock> {
    const row = await trx('key_packages')
      .where({ user_id: userId, device_id: deviceId })
      .first(
        trx.raw('count(*) filter (where not last_resort)::int as one_time'),
        trx.raw('count(*) filter (where last_resort)::int as last_resort'),
      );
    return { one_time: Number(row?.one_time ?? 0), last_resort: Number(row?.last_resort ?? 0) > 0 };
  }

  /** Adds one-time packages (duplicates by ref ignored) and replaces the last-resort one when given. */
  async add(userId: string, deviceId: string, packages: NewKeyPackage[], now: number, trx: Db): Promise<void> {
    const lastResort = packages.find((p) => p.last_resort);
    if (lastResort) await trx('key_packages').where({ user_id: userId, device_id: deviceId, last_resort: true }).delete();
    const rows = packages.map((p) => ({ user_id: userId, device_id: deviceId, ...p, created_ts: now }));
    if (rows.length > 0) await trx('key_packages').insert(rows).onConflict(['user_id', 'device_id', 'ref']).ignore();
  }

  /**
   * Takes the oldest one-time package of the device, or (none left) returns its last-resort
   * one without removing it. `SKIP LOCKED`: two concurrent claims never get the same row.
   */
  async claim(userId: string, deviceId: string): Promise<{ key_package: string; last_resort: boolean } | undefined> {
    const taken = await this.db.raw(
      `DELETE FROM key_packages WHERE id = (
         SELECT id FROM key_packages WHERE user_id = ? AND device_id = ? AND NOT last_resort
         ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
       RETURNING key_package`,
      [userId, deviceId],
    );
    const row = (taken.rows as Array<{ key_package: string }>)[0];
    if (row) return { key_package: row.key_package, last_resort: false };
    const lastResort = await this.db('key_packages')
      .where({ user_id: userId, device_id: deviceId, last_resort: true })
      .first('key_package');
    return lastResort ? { key_package: lastResort.key_package as string, last_resort: true } : undefined;
  }

  /** Devices of the user that hold any package. */
  async devicesWithPackages(userId: string): Promise<string[]> {
    const rows = await this.db('key_packages').where({ user_id: userId }).distinct('device_id').orderBy('device_id');
    return rows.map((r) => r.device_id as string);
  }

  /** A signed-out device's packages go with it (nobody should add it to a group any more). */
  async deleteDevice(userId: string, deviceId: string): Promise<void> {
    await this.db('key_packages').where({ user_id: userId, device_id: deviceId }).delete();
  }

  async deleteDevicesExcept(userId: string, keep: string[]): Promise<void> {
    await this.db('key_packages').where({ user_id: userId }).whereNotIn('device_id', keep).delete();
  }
}

/** Signed device lists of our users, and what other servers told us about theirs. */
export class DeviceListRepository {
  constructor(private readonly db: Db) {}

  /** With `trx` the row is locked until the transaction ends (serialises version checks). */
  async findLocal(userId: string, trx: Db = this.db, lock = false): Promise<{ version: number; signed: SignedDeviceList } | undefined> {
    const q = trx('device_lists').where({ user_id: userId });
    if (lock) q.forUpdate();
    return q.first('version', 'signed');
  }

  async putLocal(list: SignedDeviceList, now: number, trx: Db): Promise<void> {
    await trx('device_lists')
      .insert({ user_id: list.user_id, version: list.version, signed: JSON.stringify(list), updated_ts: now })
      .onConflict('user_id')
      .merge();
  }

  /**
   * Queues a device-list change for `destinations` in the caller's transaction (durable, like
   * room events): an undelivered older change of the same user is replaced, since only the
   * newest list matters, and the row lives until the outbox TTL.
   */
  async queueAnnouncement(
    destinations: string[],
    key: string,
    payload: Record<string, unknown>,
    now: number,
    ttlMs: number,
    trx: Db,
  ): Promise<void> {
    await replaceLatestEdu(trx, destinations, key, payload, now, ttlMs);
  }

  async findRemote(userId: string): Promise<{ version: number; answer: DeviceListAnswer } | undefined> {
    return this.db('remote_device_lists').where({ user_id: userId }).first('version', 'answer');
  }

  /**
   * Caches another server's answer unless we hold a newer signed version; returns whether it
   * was stored. Same version: stored (the signed-in devices may have changed).
   */
  async putRemote(server: string, answer: DeviceListAnswer, now: number, trx: Db = this.db): Promise<boolean> {
    const version = answer.device_list?.version ?? 0;
    const rows = await trx.raw(
      `INSERT INTO remote_device_lists (user_id, server, version, answer, updated_ts) VALUES (?, ?, ?, ?::jsonb, ?)
       ON CONFLICT (user_id) DO UPDATE SET version = EXCLUDED.version, answer = EXCLUDED.answer, updated_ts = EXCLUDED.updated_ts
       WHERE remote_device_lists.version <= EXCLUDED.version
       RETURNING user_id`,
      [answer.user_id, server, version, JSON.stringify(answer), now],
    );
    return (rows.rows as unknown[]).length === 1;
  }
}

export interface BackupRow {
  user_id: string;
  version: number;
  algorithm: string;
  ciphertext: string;
  updated_ts: number;
}

/** One opaque, versioned key backup per user. */
export class KeyBackupRepository {
  constructor(private readonly db: Db) {}

  async find(userId: string): Promise<BackupRow | undefined> {
    return this.db<BackupRow>('key_backups').where({ user_id: userId }).first();
  }

  /**
   * Compare-and-set: creates the backup when `expected` is null and none exists, or replaces
   * version `expected`. Returns the new version, or undefined when the expectation failed.
   */
  async put(userId: string, expected: number | null, algorithm: string, ciphertext: string, now: number): Promise<number | undefined> {
    if (expected === null) {
      const rows = await this.db('key_backups')
        .insert({ user_id: userId, version: 1, algorithm, ciphertext, updated_ts: now })
        .onConflict('user_id')
        .ignore()
        .returning('version');
      return rows[0]?.version;
    }
    const rows = await this.db('key_backups')
      .where({ user_id: userId, version: expected })
      .update({ version: expected + 1, algorithm, ciphertext, updated_ts: now })
      .returning('version');
    return rows[0]?.version;
  }

  async delete(userId: string): Promise<boolean> {
    return (await this.db('key_backups').where({ user_id: userId }).delete()) > 0;
  }
}

/**
 * The MLS epoch of each encrypted room as its sequenced commits left it. Read and written
 * inside the room's sequencing transaction (room row locked), so it never races.
 */
export class MlsEpochRepository {
  constructor(private readonly db: Db) {}

  async epoch(roomId: string, trx: Db = this.db): Promise<number | undefined> {
    const row = await trx('room_mls_epochs').where({ room_id: roomId }).first('epoch');
    return row === undefined ? undefined : Number(row.epoch);
  }

  async set(roomId: string, epoch: number, seq: number, trx: Db): Promise<void> {
    await trx('room_mls_epochs').insert({ room_id: roomId, epoch, seq }).onConflict('room_id').merge();
  }

  /** Starts the epoch count at 0 when a room turns encrypted; a later repeat changes nothing. */
  async start(roomId: string, seq: number, trx: Db): Promise<void> {
    await trx('room_mls_epochs').insert({ room_id: roomId, epoch: 0, seq }).onConflict('room_id').ignore();
  }
}
