import type { AuditEntry } from '@parley/schemas';
import type { Db } from '../../db/database.js';

export interface AuditFilter {
  actor?: string;
  action?: string;
  target?: string;
  since?: number;
  until?: number;
  /** Entries with an id below this (paging back). */
  before?: number;
  limit: number;
}

/** The admin audit log: insert and read only (the table refuses UPDATE and DELETE). */
export class AuditRepository {
  constructor(private readonly db: Db) {}

  async insert(entry: Omit<AuditEntry, 'id'>, trx: Db = this.db): Promise<number> {
    const [row] = await trx('admin_audit_log')
      .insert({ ...entry, details: JSON.stringify(entry.details) })
      .returning<{ id: string }[]>('id');
    return Number(row?.id);
  }

  async list(f: AuditFilter): Promise<AuditEntry[]> {
    const q = this.db('admin_audit_log');
    if (f.actor) q.where('actor', f.actor);
    if (f.action) q.where('action', 'like', `${f.action.replace(/[%_\\]/g, '\\$&')}%`);
    if (f.target) q.where('target', f.target);
    if (f.since !== undefined) q.where('ts', '>=', f.since);
    if (f.until !== undefined) q.where('ts', '<', f.until);
    if (f.before !== undefined) q.where('id', '<', f.before);
    const rows = await q.orderBy('id', 'desc').limit(f.limit);
    return rows.map((r) => ({ ...r, id: Number(r.id), ts: Number(r.ts) }));
  }
}
