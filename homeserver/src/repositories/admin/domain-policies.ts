import type { DomainPolicy, DomainPolicyKind } from '@parley/schemas';
import type { Db } from '../../db/database.js';

export interface SubscriptionRow {
  id: number;
  url: string;
  public_key: string;
  name: string | null;
  created_ts: number;
  created_by: string;
  last_fetch_ts: number | null;
  last_issued_ts: number | null;
  last_error: string | null;
  entries: number;
}

export interface NewPolicy {
  domain: string;
  kind: DomainPolicyKind;
  reason: string | null;
}

const SLICE = 1000;

function toPolicy(r: Record<string, unknown>): DomainPolicy {
  return {
    id: Number(r.id),
    domain: r.domain as string,
    kind: r.kind as DomainPolicyKind,
    reason: (r.reason as string | null) ?? null,
    batch: r.batch as string,
    subscription_id: r.subscription_id === null ? null : Number(r.subscription_id),
    created_ts: Number(r.created_ts),
    created_by: r.created_by as string,
  };
}

function toSubscription(r: Record<string, unknown>): SubscriptionRow {
  const n = (v: unknown) => (v === null || v === undefined ? null : Number(v));
  return {
    id: Number(r.id),
    url: r.url as string,
    public_key: r.public_key as string,
    name: (r.name as string | null) ?? null,
    created_ts: Number(r.created_ts),
    created_by: r.created_by as string,
    last_fetch_ts: n(r.last_fetch_ts),
    last_issued_ts: n(r.last_issued_ts),
    last_error: (r.last_error as string | null) ?? null,
    entries: Number(r.entries),
  };
}

/** Domain blocks and allows, and the signed blocklists they may come from. */
export class DomainPolicyRepository {
  constructor(private readonly db: Db) {}

  async all(): Promise<DomainPolicy[]> {
    return (await this.db('domain_policies').orderBy(['domain', 'id'])).map(toPolicy);
  }

  /** Adds entries as one batch (in slices, one transaction); duplicates within the batch are skipped. */
  async addBatch(
    batch: string,
    entries: NewPolicy[],
    meta: { by: string; now: number; subscriptionId?: number },
    trx: Db = this.db,
  ): Promise<number> {
    let added = 0;
    for (let i = 0; i < entries.length; i += SLICE) {
      const rows = entries.slice(i, i + SLICE).map((e) => ({
        ...e,
        batch,
        subscription_id: meta.subscriptionId ?? null,
        created_ts: meta.now,
        created_by: meta.by,
      }));
      const inserted = await trx('domain_policies').insert(rows).onConflict(['domain', 'kind', 'batch']).ignore().returning('id');
      added += inserted.length;
    }
    return added;
  }

  async findById(id: number): Promise<DomainPolicy | undefined> {
    const row = await this.db('domain_policies').where({ id }).first();
    return row ? toPolicy(row) : undefined;
  }

  async deleteById(id: number): Promise<DomainPolicy | undefined> {
    const [row] = await this.db('domain_policies').where({ id }).delete().returning('*');
    return row ? toPolicy(row) : undefined;
  }

  /** Removes every entry of a batch; answers the removed domains. */
  async deleteBatch(batch: string, trx: Db = this.db): Promise<DomainPolicy[]> {
    return (await trx('domain_policies').where({ batch }).delete().returning('*')).map(toPolicy);
  }

  async subscriptions(): Promise<SubscriptionRow[]> {
    return (await this.db('blocklist_subscriptions').orderBy('id')).map(toSubscription);
  }

  async subscription(id: number): Promise<SubscriptionRow | undefined> {
    const row = await this.db('blocklist_subscriptions').where({ id }).first();
    return row ? toSubscription(row) : undefined;
  }

  async insertSubscription(
    row: Pick<SubscriptionRow, 'url' | 'public_key' | 'name' | 'created_ts' | 'created_by'>,
  ): Promise<SubscriptionRow | undefined> {
    const [inserted] = await this.db('blocklist_subscriptions').insert(row).onConflict('url').ignore().returning('*');
    return inserted ? toSubscription(inserted) : undefined;
  }

  async deleteSubscription(id: number, trx: Db = this.db): Promise<boolean> {
    return (await trx('blocklist_subscriptions').where({ id }).delete()) > 0;
  }

  async recordFetch(
    id: number,
    fields: { last_fetch_ts: number; last_error: string | null; last_issued_ts?: number; entries?: number },
    trx: Db = this.db,
  ): Promise<void> {
    await trx('blocklist_subscriptions').where({ id }).update(fields);
  }
}
