import type { Db } from '../db/database.js';

export interface RegistrationTokenRow {
  token: string;
  uses_allowed: number | null;
  uses_completed: number;
  expires_ts: number | null;
  created_ts: number;
}

export class RegistrationTokenRepository {
  constructor(private readonly db: Db) {}

  async insert(row: RegistrationTokenRow): Promise<void> {
    await this.db('registration_tokens').insert(row);
  }

  async list(): Promise<RegistrationTokenRow[]> {
    return this.db<RegistrationTokenRow>('registration_tokens').orderBy('created_ts', 'asc');
  }

  async delete(token: string): Promise<boolean> {
    return (await this.db('registration_tokens').where({ token }).delete()) > 0;
  }

  /** Spends one use atomically; false if unknown, used up or expired. */
  async consume(token: string, now: number, trx: Db = this.db): Promise<boolean> {
    const updated = await trx('registration_tokens')
      .where({ token })
      .andWhere((q) => q.whereNull('uses_allowed').orWhere('uses_completed', '<', trx.ref('uses_allowed')))
      .andWhere((q) => q.whereNull('expires_ts').orWhere('expires_ts', '>', now))
      .increment('uses_completed', 1);
    return updated === 1;
  }
}
