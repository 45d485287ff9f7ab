import type { Db } from '../db/database.js';

export type TokenKind = 'access' | 'refresh';

export interface TokenRow {
  id: string;
  device_pk: number;
  secret_hash: Buffer;
  created_ts: number;
  expires_ts: number;
}

export interface RefreshTokenRow extends TokenRow {
  used_ts: number | null;
}

/** An access token joined with the device and user it belongs to. */
export interface AccessTokenLookup extends TokenRow {
  user_id: string;
  device_id: string;
  is_admin: boolean;
  deactivated: boolean;
  last_seen_ts: number | null;
}

const TABLE: Record<TokenKind, string> = { access: 'access_tokens', refresh: 'refresh_tokens' };

export class TokenRepository {
  constructor(private readonly db: Db) {}

  async insert(kind: TokenKind, row: TokenRow, trx: Db = this.db): Promise<void> {
    await trx(TABLE[kind]).insert(row);
  }

  async findAccess(id: string): Promise<AccessTokenLookup | undefined> {
    return this.db('access_tokens as t')
      .join('devices as d', 'd.id', 't.device_pk')
      .join('users as u', 'u.user_id', 'd.user_id')
      .where('t.id', id)
      .first<AccessTokenLookup | undefined>(
        't.id',
        't.device_pk',
        't.secret_hash',
        't.created_ts',
        't.expires_ts',
        'd.user_id',
        'd.device_id',
        'd.last_seen_ts',
        'u.is_admin',
        'u.deactivated',
      );
  }

  async findRefresh(id: string, trx: Db = this.db): Promise<RefreshTokenRow | undefined> {
    return trx<RefreshTokenRow>('refresh_tokens').where({ id }).forUpdate().first();
  }

  /** Marks a refresh token used; false when another request already used it. */
  async markRefreshUsed(id: string, ts: number, trx: Db = this.db): Promise<boolean> {
    return (await trx('refresh_tokens').where({ id }).whereNull('used_ts').update({ used_ts: ts })) === 1;
  }

  /** Deletes a device's tokens of one kind; returns the IDs deleted. */
  async deleteForDevice(kind: TokenKind, devicePk: number, trx: Db = this.db): Promise<string[]> {
    const rows: Array<{ id: string }> = await trx(TABLE[kind]).where({ device_pk: devicePk }).delete(['id']);
    return rows.map((r) => r.id);
  }

  /** Which of these access token IDs still exist (a stream re-checks its token with this). */
  async existingAccess(ids: string[]): Promise<Set<string>> {
    if (ids.length === 0) return new Set();
    const rows = await this.db('access_tokens').whereIn('id', ids).select<Array<{ id: string }>>('id');
    return new Set(rows.map((r) => r.id));
  }

  async deleteAccess(id: string): Promise<void> {
    await this.db('access_tokens').where({ id }).delete();
  }

  async deleteExpired(now: number): Promise<number> {
    const a = await this.db('access_tokens').where('expires_ts', '<', now).delete();
    const r = await this.db('refresh_tokens').where('expires_ts', '<', now).delete();
    return a + r;
  }
}
