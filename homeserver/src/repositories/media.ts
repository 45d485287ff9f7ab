import type { Db } from '../db/database.js';

export interface MediaRow {
  media_id: string;
  uploader: string;
  content_type: string;
  client_content_type: string | null;
  filename: string | null;
  size: number;
  sha256: string;
  created_ts: number;
}

export class MediaRepository {
  constructor(private readonly db: Db) {}

  async findById(mediaId: string): Promise<MediaRow | undefined> {
    return this.db<MediaRow>('media').where({ media_id: mediaId }).first();
  }

  async insert(row: MediaRow, trx: Db = this.db): Promise<void> {
    await trx('media').insert(row);
  }

  /** Bytes stored for one uploader. */
  async bytesUsedBy(userId: string, trx: Db = this.db): Promise<number> {
    const [row] = await trx('media').where({ uploader: userId }).sum<{ total: string | number | null }[]>({ total: 'size' });
    return Number(row?.total ?? 0);
  }

  /**
   * Serialises quota decisions for one uploader until the transaction ends, so two
   * parallel uploads cannot both fit in the same remaining space.
   */
  async lockQuota(userId: string, trx: Db): Promise<void> {
    await trx.raw('select pg_advisory_xact_lock(hashtextextended(?, 0))', [`parley.media.quota:${userId}`]);
  }
}
