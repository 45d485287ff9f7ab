import type { Db } from '../db/database.js';

export interface UserRow {
  user_id: string;
  localpart: string;
  password_hash: string | null;
  is_admin: boolean;
  deactivated: boolean;
  displayname: string | null;
  avatar_url: string | null;
  created_ts: number;
}

export class UserRepository {
  constructor(private readonly db: Db) {}

  async findById(userId: string, trx: Db = this.db): Promise<UserRow | undefined> {
    return trx<UserRow>('users').where({ user_id: userId }).first();
  }

  /** Inserts the user; returns false when the localpart is already taken. */
  async insert(row: UserRow, trx: Db = this.db): Promise<boolean> {
    const inserted = await trx('users').insert(row).onConflict('localpart').ignore().returning('user_id');
    return inserted.length === 1;
  }

  async setPasswordHash(userId: string, hash: string, trx: Db = this.db): Promise<void> {
    await trx('users').where({ user_id: userId }).update({ password_hash: hash });
  }

  async setAdmin(userId: string, isAdmin: boolean): Promise<number> {
    return this.db('users').where({ user_id: userId }).update({ is_admin: isAdmin });
  }

  async updateProfile(userId: string, fields: { displayname?: string | null; avatar_url?: string | null }): Promise<UserRow | undefined> {
    const [row] = await this.db<UserRow>('users').where({ user_id: userId }).update(fields).returning('*');
    return row;
  }

  async count(): Promise<number> {
    const [row] = await this.db('users').count<{ count: string | number }[]>({ count: '*' });
    return Number(row?.count ?? 0);
  }
}
