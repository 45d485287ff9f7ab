import { canonicalJson } from '@parley/federation/canonical';
import { publicKeyFromB64u, verifyBytes } from '@parley/federation/keys';
import { check, SignedBlocklist } from '@parley/schemas';
import type { Db } from '../../db/database.js';
import { badRequest, notFound, ParleyError } from '../../errors.js';
import type { Logger } from '../../logger.js';
import type { DomainPolicyRepository, SubscriptionRow } from '../../repositories/admin/domain-policies.js';
import type { Clock } from '../clock.js';
import { type DomainPolicyService, normalizeDomain } from './domain-policy.js';

export const BLOCKLIST_MAX_BYTES = 5 * 1024 * 1024;
export const BLOCKLIST_TIMEOUT_MS = 10_000;
export const BLOCKLIST_REFRESH_MS = 6 * 3600_000;

export type BlocklistFetch = (url: string) => Promise<string>;

const LOOPBACK = /^(?:127\.\d+\.\d+\.\d+|localhost|\[::1\])$/;

/** GET with a deadline and a size cap; plain http only to loopback (tests, a local mirror). */
export const fetchBlocklist: BlocklistFetch = async (url) => {
  const u = new URL(url);
  if (u.protocol !== 'https:' && !(u.protocol === 'http:' && LOOPBACK.test(u.hostname)))
    throw new Error('blocklists are fetched over https');
  if (u.username || u.password) throw new Error('blocklist URLs carry no credentials');
  const res = await fetch(u, {
    signal: AbortSignal.timeout(BLOCKLIST_TIMEOUT_MS),
    redirect: 'error',
    headers: { accept: 'application/json' },
  });
  if (!res.ok || !res.body) throw new Error(`answered ${res.status}`);
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    size += chunk.byteLength;
    if (size > BLOCKLIST_MAX_BYTES) throw new Error(`larger than ${BLOCKLIST_MAX_BYTES} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
};

/** Verifies a blocklist document against the subscription's key; answers the document or why it is refused. */
export function verifyBlocklist(text: string, publicKeyB64u: string): { ok: true; list: SignedBlocklist } | { ok: false; reason: string } {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return { ok: false, reason: 'not valid JSON' };
  }
  const r = check(SignedBlocklist, doc);
  if (!r.ok) return { ok: false, reason: `${r.field || 'document'}: ${r.message}` };
  const { signature, ...unsigned } = r.value;
  let key: ReturnType<typeof publicKeyFromB64u>;
  try {
    key = publicKeyFromB64u(publicKeyB64u);
  } catch {
    return { ok: false, reason: 'the subscription key is not an Ed25519 public key' };
  }
  const ok = verifyBytes(Buffer.from(signature, 'base64url'), new TextEncoder().encode(canonicalJson(unsigned)), key);
  return ok ? { ok: true, list: r.value } : { ok: false, reason: 'the signature does not verify under the subscription key' };
}

/**
 * Subscribed blocklists (admin/README.md): a URL fetched every few hours, Ed25519-signed by the
 * key the admin gave when subscribing. Its entries form one batch, replaced on each fetch
 * (an older or unsigned document is refused and the previous entries stay); unsubscribing
 * removes the batch in one step.
 */
export class BlocklistSubscriptions {
  #timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly db: Db,
    private readonly repo: DomainPolicyRepository,
    private readonly policy: DomainPolicyService,
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly fetcher: BlocklistFetch = fetchBlocklist,
  ) {}

  list(): Promise<SubscriptionRow[]> {
    return this.repo.subscriptions();
  }

  async subscribe(req: { url: string; public_key: string; name?: string | undefined }, by: string): Promise<SubscriptionRow> {
    try {
      publicKeyFromB64u(req.public_key);
    } catch {
      throw badRequest('PARLEY_INVALID_PARAM', 'public_key is not an Ed25519 public key', 'public_key');
    }
    // Refuse a list that does not verify now, rather than subscribe to nothing.
    const list = await this.#fetchVerified(req.url, req.public_key);
    const sub = await this.repo.insertSubscription({
      url: req.url,
      public_key: req.public_key,
      name: req.name ?? list.name,
      created_ts: this.clock.now(),
      created_by: by,
    });
    if (!sub) throw new ParleyError(409, 'PARLEY_INVALID_PARAM', 'url: already subscribed', { field: 'url' });
    await this.#apply(sub, list);
    return (await this.repo.subscription(sub.id)) as SubscriptionRow;
  }

  /** Fetches one subscription now; a failure is recorded and the previous entries stay. */
  async refresh(id: number): Promise<SubscriptionRow> {
    const sub = await this.repo.subscription(id);
    if (!sub) throw notFound(`no blocklist subscription ${id}`);
    try {
      const list = await this.#fetchVerified(sub.url, sub.public_key);
      if (sub.last_issued_ts !== null && list.issued_ts < sub.last_issued_ts)
        throw badRequest('PARLEY_INVALID_PARAM', 'the list is older than the one applied (replay)', 'url');
      await this.#apply(sub, list);
    } catch (err) {
      await this.repo.recordFetch(id, { last_fetch_ts: this.clock.now(), last_error: (err as Error).message.slice(0, 300) });
      throw err;
    }
    return (await this.repo.subscription(id)) as SubscriptionRow;
  }

  /** Unsubscribes: the subscription and every entry it brought go in one statement (cascade). */
  async unsubscribe(id: number): Promise<SubscriptionRow> {
    const sub = await this.repo.subscription(id);
    if (!sub) throw notFound(`no blocklist subscription ${id}`);
    const removed = await this.repo.deleteBatch(`sub:${id}`);
    await this.repo.deleteSubscription(id);
    await this.policy.changed(removed.map((p) => p.domain));
    return sub;
  }

  startRefreshing(): void {
    this.#timer ??= setInterval(() => {
      this.refreshAll().catch(() => {});
    }, BLOCKLIST_REFRESH_MS);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
  }

  async refreshAll(): Promise<void> {
    for (const sub of await this.repo.subscriptions()) {
      await this.refresh(sub.id).catch((err) => this.log.warn({ err: (err as Error).message, url: sub.url }, 'blocklist refresh failed'));
    }
  }

  async #fetchVerified(url: string, key: string): Promise<SignedBlocklist> {
    let text: string;
    try {
      text = await this.fetcher(url);
    } catch (err) {
      throw new ParleyError(502, 'PARLEY_UNAVAILABLE', `url: could not fetch the blocklist: ${(err as Error).message}`.slice(0, 300), {
        field: 'url',
      });
    }
    const verified = verifyBlocklist(text, key);
    if (!verified.ok) throw badRequest('PARLEY_INVALID_PARAM', `url: blocklist refused: ${verified.reason}`, 'url');
    return verified.list;
  }

  async #apply(sub: SubscriptionRow, list: SignedBlocklist): Promise<void> {
    const batch = `sub:${sub.id}`;
    const entries = [
      ...new Map(
        list.entries.flatMap((e) => {
          const d = normalizeDomain(e.domain);
          return d ? [[d, { domain: d, kind: 'block' as const, reason: e.reason ?? null }] as const] : [];
        }),
      ).values(),
    ];
    const removed = await this.db.transaction(async (trx) => {
      const old = await this.repo.deleteBatch(batch, trx);
      await this.repo.addBatch(batch, entries, { by: sub.created_by, now: this.clock.now(), subscriptionId: sub.id }, trx);
      await this.repo.recordFetch(
        sub.id,
        { last_fetch_ts: this.clock.now(), last_error: null, last_issued_ts: list.issued_ts, entries: entries.length },
        trx,
      );
      return old;
    });
    const kept = new Set(entries.map((e) => e.domain));
    await this.policy.changed(removed.map((p) => p.domain).filter((d) => !kept.has(d)));
  }
}
