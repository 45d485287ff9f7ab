import { type KeyBackup, type KeyBackupPutRequest, type KeyBackupPutResponse, MAX_BACKUP_BYTES } from '@parley/schemas';
import { badRequest, notFound, ParleyError } from '../../errors.js';
import type { BackupRow, KeyBackupRepository } from '../../repositories/e2e-keys.js';
import type { Clock } from '../clock.js';
import type { AuthContext } from '../sessions.js';

const etagOf = (version: number) => `"v${version}"`;

/** `If-Match: "v3"` → 3; anything else is a 400 naming the header. */
export function versionFromEtag(header: string): number {
  const m = /^"v([1-9][0-9]{0,14})"$/.exec(header.trim());
  if (!m) throw badRequest('PARLEY_INVALID_PARAM', 'If-Match must be an etag this server gave ("v<version>")', 'If-Match');
  return Number(m[1]);
}

function toWire(row: BackupRow): KeyBackup {
  return {
    version: row.version,
    etag: etagOf(row.version),
    ciphertext: row.ciphertext,
    algorithm: row.algorithm,
    updated_ts: row.updated_ts,
  };
}

/**
 * Server-side key backup (docs/protocol.md): one opaque blob per user, encrypted by the client with
 * its recovery key. Writes are compare-and-set on the version, so two devices backing up at
 * once cannot overwrite each other unnoticed: the loser gets 409, fetches, merges, retries.
 */
export class KeyBackupService {
  constructor(
    private readonly backups: KeyBackupRepository,
    private readonly clock: Clock,
  ) {}

  async get(auth: AuthContext): Promise<KeyBackup> {
    const row = await this.backups.find(auth.userId);
    if (!row) throw notFound('no key backup for this account');
    return toWire(row);
  }

  async put(auth: AuthContext, req: KeyBackupPutRequest, ifMatch: string | undefined): Promise<KeyBackupPutResponse> {
    if (Math.floor((req.ciphertext.length * 3) / 4) > MAX_BACKUP_BYTES)
      throw badRequest('PARLEY_INVALID_PARAM', `ciphertext is larger than ${MAX_BACKUP_BYTES} bytes`, 'ciphertext');
    let expected = req.expected_version;
    if (ifMatch !== undefined) {
      const fromHeader = versionFromEtag(ifMatch);
      if (expected !== undefined && expected !== fromHeader)
        throw badRequest('PARLEY_INVALID_PARAM', 'If-Match and expected_version disagree', 'expected_version');
      expected = fromHeader;
    }
    if (expected === undefined)
      throw badRequest('PARLEY_MISSING_PARAM', 'expected_version (null to create) or If-Match is required', 'expected_version');
    const version = await this.backups.put(auth.userId, expected, req.algorithm, req.ciphertext, this.clock.now());
    if (version === undefined) {
      const current = await this.backups.find(auth.userId);
      const now = current ? `the backup is at version ${current.version}` : 'there is no backup yet (create it with expected_version null)';
      throw new ParleyError(409, 'PARLEY_BACKUP_CONFLICT', `expected version ${expected ?? 'none'}, but ${now}`, {
        field: 'expected_version',
      });
    }
    return { version, etag: etagOf(version) };
  }

  async delete(auth: AuthContext): Promise<void> {
    if (!(await this.backups.delete(auth.userId))) throw notFound('no key backup for this account');
  }
}
