import type { KeyDocumentPersistence, StoredKeyDocument } from '@parley/federation/keys';
import type { ServerKeyDocument } from '@parley/schemas';
import type { Db } from '../db/database.js';

/**
 * Other servers' verified key documents (the KeyStore's persistence): loaded when a server is
 * first looked up after a start, so the keys it held survive restarts (issue 10, L5). The
 * newest documents per server are kept; a document's keys include its retired ones, so the
 * newest few carry the server's key history.
 */
export class ServerKeyRepository implements KeyDocumentPersistence {
  constructor(
    private readonly db: Db,
    private readonly keepPerServer = 16,
  ) {}

  async load(serverName: string): Promise<StoredKeyDocument[]> {
    const rows = await this.db('server_key_documents')
      .where({ server_name: serverName })
      .orderBy('valid_until_ts', 'desc')
      .limit(this.keepPerServer)
      .select('document', 'fetched_ts');
    return rows.map((row: { document: unknown; fetched_ts: string | number }) => ({
      document: row.document,
      fetchedAt: Number(row.fetched_ts),
    }));
  }

  async save(serverName: string, entry: { document: ServerKeyDocument; fetchedAt: number }): Promise<void> {
    await this.db.transaction(async (trx) => {
      await trx('server_key_documents')
        .insert({
          server_name: serverName,
          valid_until_ts: entry.document.valid_until_ts,
          fetched_ts: entry.fetchedAt,
          document: JSON.stringify(entry.document),
        })
        .onConflict(['server_name', 'valid_until_ts'])
        .ignore();
      const keep = trx('server_key_documents')
        .where({ server_name: serverName })
        .orderBy('valid_until_ts', 'desc')
        .limit(this.keepPerServer)
        .select('valid_until_ts');
      await trx('server_key_documents').where({ server_name: serverName }).whereNotIn('valid_until_ts', keep).delete();
    });
  }
}
