import type { Db } from '../db/database.js';

export interface MediaRow {
  /** Our own ID: the file's name on disk, and the public ID of media uploaded here. */
  media_id: string;
  /** Null for a cached copy of another server's media. */
  uploader: string | null;
  content_type: string;
  client_content_type: string | null;
  filename: string | null;
  size: number;
  sha256: string;
  created_ts: number;
  /** The server a cached copy came from, and its ID there; null for our own uploads. */
  origin?: string | null;
  remote_media_id?: string | null;
  /** Set when an admin quarantined it (admin console): served to nobody. */
  quarantined_ts?: number | null;
  /** When a cached remote copy was last served (eviction is least recently used first). */
  last_access_ts?: number | null;
}

export class MediaRepository {
  constructor(private readonly db: Db) {}

  /** Media uploaded to this server (never a cached remote copy). */
  async findLocal(mediaId: string): Promise<MediaRow | undefined> {
    // Quarantined media are served to nobody (admin console), here or over federation.
    return this.db<MediaRow>('media').where({ media_id: mediaId }).whereNull('origin').whereNull('quarantined_ts').first();
  }

  /** Our cached copy of `origin`'s media `remoteId`. */
  async findRemote(origin: string, remoteId: string): Promise<MediaRow | undefined> {
    return this.db<MediaRow>('media').where({ origin, remote_media_id: remoteId }).first();
  }

  async insert(row: MediaRow, trx: Db = this.db): Promise<void> {
    await trx('media').insert(row);
  }

  /** Inserts a cached remote copy; false when another request cached the same media first. */
  async insertRemote(row: MediaRow, trx: Db = this.db): Promise<boolean> {
    const inserted = await trx('media').insert(row).onConflict(['origin', 'remote_media_id']).ignore().returning('media_id');
    return inserted.length === 1;
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

  /** Marks a cached remote copy as used now (the eviction order is least recently used). */
  async touchRemote(mediaId: string, now: number): Promise<void> {
    await this.db('media')
      .where({ media_id: mediaId })
      .whereNotNull('origin')
      .andWhere('last_access_ts', '<', now)
      .update({ last_access_ts: now });
  }

  /** Bytes held by cached copies of other servers' media. */
  async remoteCacheBytes(trx: Db = this.db): Promise<number> {
    const [row] = await trx('media').whereNotNull('origin').sum<{ total: string | number | null }[]>({ total: 'size' });
    return Number(row?.total ?? 0);
  }

  /**
   * Deletes least recently used cached remote copies (never `keep`) until at most `maxBytes`
   * remain, one eviction at a time across processes; answers the evicted rows, whose files
   * the caller removes once this has committed.
   */
  async evictRemote(maxBytes: number, keep: string, trx: Db): Promise<Array<{ media_id: string; size: number }>> {
    await trx.raw('select pg_advisory_xact_lock(hashtextextended(?, 0))', ['parley.media.remote_cache']);
    let total = await this.remoteCacheBytes(trx);
    const evicted: Array<{ media_id: string; size: number }> = [];
    while (total > maxBytes) {
      const batch: Array<{ media_id: string; size: number }> = await trx('media')
        .whereNotNull('origin')
        .whereNot('media_id', keep)
        .orderBy([{ column: 'last_access_ts' }, { column: 'created_ts' }])
        .limit(100)
        .select('media_id', 'size');
      if (batch.length === 0) break;
      const victims: Array<{ media_id: string; size: number }> = [];
      for (const row of batch) {
        if (total <= maxBytes) break;
        victims.push(row);
        total -= Number(row.size);
      }
      await trx('media')
        .whereIn(
          'media_id',
          victims.map((v) => v.media_id),
        )
        .delete();
      evicted.push(...victims);
    }
    return evicted;
  }
}
