import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import {
  AddressBook,
  AnnounceLimiter,
  type BookEntry,
  buildDescriptor,
  descriptorKeyIds,
  verifyDescriptor,
} from '@parley/federation/bootstrap';
import { certificateHost } from '@parley/federation/tls';
import {
  type BootstrapDescriptor,
  BootstrapFallbackList,
  BootstrapList,
  check,
  MAX_BOOTSTRAP_BATCH,
  MAX_DESCRIPTOR_VALIDITY_MS,
} from '@parley/schemas';
import type { Config } from '../config.js';
import type { Logger } from '../logger.js';
import type { Clock } from '../services/clock.js';
import type { SigningIdentity } from '../services/room-log.js';
import { deliveredFallbackList } from '../updates/mirror.js';
import type { FederationContext } from './setup.js';

const CACHE_FILE = 'bootstrap.json';
/** Descriptors verified per incoming list or announcement, whatever the peer's budget. */
const VERIFY_PER_BATCH = 64;
const LIST_TIMEOUT_MS = 10_000;
const LIST_MAX_BYTES = 1024 * 1024;

export interface BootstrapDeps {
  config: Config;
  fed: FederationContext;
  identity: SigningIdentity;
  clock: Clock;
  log: Logger;
  random?: () => number;
}

/**
 * Bootstrap node lists (docs/protocol.md) for this server: its own descriptor when the operator
 * announces, the address book of other servers' descriptors, and the exchange.
 *
 * - Pull: at start from the seeds, the two anchors and the fallback list; then every
 *   `pull_interval_ms` from a few known servers. Push: our descriptor, on start and when
 *   it is renewed, to `fanout` servers; a server that learns something new from a push
 *   passes it on with one hop less.
 * - Every descriptor is verified against the key of the server it names, fetched and
 *   pinned by the key store (never against keys the descriptor carries), before it enters
 *   the book; at most `VERIFY_PER_BATCH` per message and `announce_per_peer` per peer.
 * - A feeler probes one unproven entry at a time; a tried slot's incumbent is tested before
 *   a newcomer may take it. The book is cached in data_dir/bootstrap.json for restarts.
 * - A server that does not announce never signs a descriptor, so no list can name it.
 */
export class BootstrapService {
  readonly book: AddressBook;
  readonly #d: BootstrapDeps;
  readonly #limiter: AnnounceLimiter;
  readonly #random: () => number;
  readonly #cacheFile: string;
  #secret: Buffer;
  #own: { descriptor: BootstrapDescriptor; renewAt: number } | null = null;
  #timers: NodeJS.Timeout[] = [];
  #stopped = false;
  /** Servers we pulled from successfully since start: anchor candidates. */
  #answered: string[] = [];
  /** Entries an admin pruned → when: only a descriptor signed after that brings one back. */
  #pruned = new Map<string, number>();
  #saving: Promise<void> = Promise.resolve();

  constructor(d: BootstrapDeps, secret?: Buffer) {
    this.#d = d;
    this.#random = d.random ?? Math.random;
    this.#secret = secret ?? randomBytes(32);
    this.#cacheFile = path.join(d.config.data_dir, CACHE_FILE);
    const limits = d.config.bootstrap.announce_per_peer;
    this.#limiter = new AnnounceLimiter(limits.burst, limits.per_minute, () => d.clock.now());
    this.book = this.#newBook();
  }

  #newBook(): AddressBook {
    return new AddressBook({ secret: this.#secret, now: () => this.#d.clock.now(), random: this.#random });
  }

  get #cfg(): Config['bootstrap'] {
    return this.#d.config.bootstrap;
  }

  get serverName(): string {
    return this.#d.config.server_name;
  }

  /** Our signed descriptor, or null when this server does not announce. */
  ownDescriptor(): BootstrapDescriptor | null {
    if (!this.#cfg.announce) return null;
    const now = this.#d.clock.now();
    if (!this.#own || now >= this.#own.renewAt) {
      const endpoints =
        this.#cfg.endpoints.length > 0
          ? this.#cfg.endpoints
          : [{ host: certificateHost(this.serverName), port: this.#d.config.federation.port || 8448 }];
      const descriptor = buildDescriptor({
        serverName: this.serverName,
        key: this.#d.identity,
        endpoints,
        tlsFingerprints: [this.#d.fed.tls.fingerprint],
        // A mailbox is offered exactly when it is on, with the limits senders must respect (docs/protocol.md).
        // A relay (relay.enabled) is offered with its reservation limits (docs/protocol.md, "Anchor relays").
        ...relayOffer(mailboxOffer(this.#cfg.capabilities, this.#d.config.mailbox), this.#d.config.relay),
        now,
        validForMs: this.#cfg.descriptor_validity_ms,
      });
      this.#own = { descriptor, renewAt: now + Math.floor(this.#cfg.descriptor_validity_ms / 2) };
    }
    return this.#own.descriptor;
  }

  /**
   * Verifies descriptors heard from `source` and adds the good ones. Answers the ones that
   * were new or newer (worth passing on), the reasons for those refused, and how many were
   * not looked at (over the peer's budget). What costs — fetching the named server's key and
   * checking the signature — is bounded per message and per peer; what does not (junk, our
   * own, blocked, pruned, and replays of what the book holds) is sorted out first and free,
   * so a list mostly of known servers still brings in up to 64 new ones.
   */
  async accept(
    raws: unknown[],
    source: { name: string; host: string },
    options: { pinned?: boolean } = {},
  ): Promise<{ fresh: BootstrapDescriptor[]; refused: string[]; overBudget: number }> {
    const fresh: BootstrapDescriptor[] = [];
    const refused: string[] = [];
    const toVerify: Array<{ raw: unknown; server: string; keyIds: string[] }> = [];
    for (const raw of raws) {
      const named = descriptorKeyIds(raw);
      if (!named) {
        refused.push('not a descriptor');
        continue;
      }
      if (named.server === this.serverName) continue;
      if (this.#d.fed.refuse(named.server)) {
        refused.push(`${named.server}: blocked here`);
        continue;
      }
      const held = this.book.get(named.server);
      const issued = (raw as { issued_ts?: unknown }).issued_ts;
      if (held && typeof issued === 'number' && issued <= held.descriptor.issued_ts) continue; // a replay: nothing to fetch
      if (this.#wasPruned(named.server, issued)) {
        refused.push(`${named.server}: pruned by an admin; only a descriptor signed since comes back`);
        continue;
      }
      toVerify.push({ raw, ...named });
    }
    const budget =
      source.name === 'fallback' || source.name === 'seed'
        ? toVerify.length
        : this.#limiter.take(source.name, Math.min(toVerify.length, VERIFY_PER_BATCH));
    for (const { raw, server, keyIds } of toVerify.slice(0, budget)) {
      // The key of the server the descriptor names, fetched from that server (and pinned).
      await this.#d.fed.keyStore.prefetch(server, keyIds, { requester: `bootstrap:${source.name}` });
      const checked = verifyDescriptor(raw, this.#d.fed.keyStore.keyRing(), this.#d.clock.now());
      if (!checked.ok) {
        refused.push(checked.reason);
        continue;
      }
      // An admin may have pruned it while its key was being fetched.
      if (this.#wasPruned(server, checked.descriptor.issued_ts)) continue;
      const added = this.book.add(checked.descriptor, source, options);
      if ('entry' in added) fresh.push(checked.descriptor);
      else if (added.kind !== 'replay') refused.push(added.reason);
    }
    const overBudget = toVerify.length - budget;
    if (refused.length > 0 || overBudget > 0) {
      this.#d.log.debug({ source: source.name, refused: refused.slice(0, 10), over_budget: overBudget }, 'bootstrap descriptors refused');
    }
    return { fresh, refused, overBudget };
  }

  #wasPruned(server: string, issued: unknown): boolean {
    const at = this.#pruned.get(server);
    return at !== undefined && (typeof issued !== 'number' || issued <= at);
  }

  /**
   * An admin's prune: the entry goes, and the same (or an older) descriptor gossiped back by
   * other servers is not taken again; a descriptor its server signs after the prune is (the
   * server is alive and still announces). To keep a server out for good, block its domain.
   */
  async prune(server: string): Promise<boolean> {
    const had = this.book.remove(server);
    if (had) {
      this.#pruned.set(server, this.#d.clock.now());
      await this.saveCache();
    }
    return had;
  }

  /** What we answer to `GET /federation/v1/bootstrap/list`: ours (when announcing) and a sample of the book. */
  list(): BootstrapDescriptor[] {
    const own = this.ownDescriptor();
    const now = this.#d.clock.now();
    const sample = this.book
      .select(MAX_BOOTSTRAP_BATCH - 1)
      .map((e) => e.descriptor)
      .filter((d) => d.valid_until_ts > now);
    return own ? [own, ...sample] : sample;
  }

  #hostOf(server: string): string {
    return this.book.get(server)?.descriptor.endpoints[0]?.host ?? certificateHost(server);
  }

  /** Pulls a list from `server`; answers whether it answered. */
  async pull(server: string, options: { pinned?: boolean } = {}): Promise<boolean> {
    if (server === this.serverName) return false;
    try {
      const res = await this.#d.fed.client.request({
        destination: server,
        method: 'GET',
        path: '/federation/v1/bootstrap/list',
        timeoutMs: LIST_TIMEOUT_MS,
        maxBytes: LIST_MAX_BYTES,
      });
      const parsed = check(BootstrapList, res.body);
      if (!parsed.ok) throw new Error(`list: ${parsed.message}`);
      const { fresh } = await this.accept(parsed.value.descriptors, { name: server, host: this.#hostOf(server) }, options);
      this.book.good(server);
      if (!this.#answered.includes(server)) this.#answered.push(server);
      if (fresh.length > 0) this.#d.log.info({ from: server, learned: fresh.length }, 'bootstrap list pulled');
      return true;
    } catch (err) {
      this.book.failed(server);
      this.#d.log.debug({ server, err: (err as Error).message }, 'bootstrap list pull failed');
      return false;
    }
  }

  /** Tests a server by fetching its descriptor: it answers with a valid one of its own. */
  async probe(server: string): Promise<boolean> {
    try {
      const res = await this.#d.fed.client.request({
        destination: server,
        method: 'GET',
        path: '/federation/v1/bootstrap/descriptor',
        timeoutMs: LIST_TIMEOUT_MS,
        maxBytes: 64 * 1024,
      });
      const { fresh } = await this.accept([res.body], { name: server, host: this.#hostOf(server) });
      const ok = fresh.length > 0 || this.book.get(server)?.descriptor.issued_ts === (res.body as { issued_ts?: number }).issued_ts;
      if (ok) this.book.good(server);
      else this.book.failed(server);
      return ok;
    } catch {
      this.book.failed(server);
      return false;
    }
  }

  /** Pushes descriptors to `fanout` servers (tried first), with a hop budget. */
  async push(descriptors: BootstrapDescriptor[], hops: number, except: ReadonlySet<string> = new Set()): Promise<void> {
    if (descriptors.length === 0) return;
    const exclude = new Set([...except, this.serverName, ...descriptors.map((d) => d.server_name)]);
    let targets = this.book.select(this.#cfg.fanout, { exclude }).map((e) => e.serverName);
    if (targets.length < this.#cfg.fanout)
      targets = [...new Set([...targets, ...this.#cfg.seeds.filter((s) => !exclude.has(s))])].slice(0, this.#cfg.fanout);
    await Promise.all(
      targets.map((destination) =>
        this.#d.fed.client
          .request({
            destination,
            method: 'POST',
            path: '/federation/v1/bootstrap/announce',
            body: { descriptors: descriptors.slice(0, MAX_BOOTSTRAP_BATCH), hops },
            timeoutMs: LIST_TIMEOUT_MS,
          })
          .then(
            () => this.book.good(destination),
            (err: Error) => {
              this.book.failed(destination);
              this.#d.log.debug({ destination, err: err.message }, 'bootstrap push failed');
            },
          ),
      ),
    );
  }

  /** An announcement from `origin`: accept what verifies, pass the new ones on with one hop less. */
  async onAnnounce(origin: string, raws: unknown[], hops: number): Promise<{ accepted: number; refused: string[]; overBudget: number }> {
    const { fresh, refused, overBudget } = await this.accept(raws, { name: origin, host: this.#hostOf(origin) });
    if (fresh.length > 0 && hops > 0 && !this.#stopped) {
      const next = Math.min(hops - 1, this.#cfg.hop_limit);
      this.push(fresh, next, new Set([origin])).catch(() => {});
    }
    return { accepted: fresh.length, refused, overBudget };
  }

  async #loadCache(): Promise<void> {
    if (!existsSync(this.#cacheFile)) return;
    try {
      const saved = JSON.parse(await readFile(this.#cacheFile, 'utf8')) as { secret?: string; book?: unknown; pruned?: unknown };
      if (typeof saved.secret === 'string' && saved.secret.length >= 40) {
        this.#secret = Buffer.from(saved.secret, 'base64url');
        Object.assign(this, { book: this.#newBook() });
      }
      const loaded = this.book.load(saved.book, this.#cfg.cache_max_age_ms);
      if (typeof saved.pruned === 'object' && saved.pruned !== null) {
        for (const [name, at] of Object.entries(saved.pruned)) if (typeof at === 'number') this.#pruned.set(name, at);
      }
      this.#d.log.info({ entries: this.book.size, anchors: this.book.anchors(), fresh: loaded }, 'bootstrap address book loaded');
    } catch (err) {
      this.#d.log.warn({ err: (err as Error).message }, 'bootstrap cache unreadable; starting empty');
    }
  }

  /**
   * Writes the cache (temporary file, then rename). Saves run one after another: the upkeep
   * round and an admin's pin or prune may save at the same moment, and two writers of the one
   * temporary file would make one rename fail.
   */
  saveCache(): Promise<void> {
    const run = this.#saving.then(() => this.#writeCache());
    this.#saving = run.catch(() => {});
    return run;
  }

  async #writeCache(): Promise<void> {
    const tmp = `${this.#cacheFile}.tmp`;
    // A prune older than the longest validity a descriptor may claim has nothing left to refuse.
    const oldest = this.#d.clock.now() - MAX_DESCRIPTOR_VALIDITY_MS;
    for (const [name, at] of this.#pruned) if (at < oldest) this.#pruned.delete(name);
    const saved = { secret: this.#secret.toString('base64url'), book: this.book.toJSON(), pruned: Object.fromEntries(this.#pruned) };
    await writeFile(tmp, JSON.stringify(saved), { mode: 0o600 });
    await rename(tmp, this.#cacheFile);
  }

  async #loadFallback(): Promise<void> {
    // The configured file, else the one the newest verified release delivered (update mirrors).
    const file = this.#cfg.fallback_list ?? deliveredFallbackList(this.#d.config.data_dir);
    if (!file) return;
    try {
      const parsed = check(BootstrapFallbackList, JSON.parse(await readFile(file, 'utf8')));
      if (!parsed.ok) throw new Error(parsed.message);
      const { fresh } = await this.accept(parsed.value.descriptors, { name: 'fallback', host: '' });
      this.#d.log.info({ file, learned: fresh.length }, 'bootstrap fallback list read');
    } catch (err) {
      this.#d.log.warn({ file, err: (err as Error).message }, 'bootstrap fallback list unusable');
    }
  }

  /** One round of upkeep: pull from a few servers, feel one unproven entry, settle collisions, expire, save. */
  async tick(): Promise<void> {
    // Nothing known yet (a first start before the release's fallback list arrived): try it again.
    if (this.book.size === 0) await this.#loadFallback();
    // A few known servers; and the seeds again while we know too few (a seed that was down at
    // our start is asked until it answers).
    const few = this.book.size < this.#cfg.fanout || this.#answered.length === 0;
    const peers = [...new Set([...this.book.select(2).map((e) => e.serverName), ...(few ? this.#cfg.seeds : [])])];
    for (const p of peers) await this.pull(p, { pinned: this.#cfg.seeds.includes(p) });
    for (const c of this.book.collisions().slice(0, 4)) this.book.resolveCollision(c.newcomer, await this.probe(c.incumbent));
    this.book.expire();
    this.book.setAnchors([...this.#answered.filter((s) => this.book.get(s)?.table === 'tried'), ...this.book.anchors()]);
    await this.saveCache();
  }

  async feel(): Promise<void> {
    const entry = this.book.feeler();
    if (entry) await this.probe(entry.serverName);
  }

  /** Starts from the cache and anchors, the seeds and the fallback list; then keeps the book. */
  async start(): Promise<void> {
    await this.#loadCache();
    const first = [...new Set([...this.book.anchors(), ...this.#cfg.seeds])];
    await Promise.all(first.map((s) => this.pull(s, { pinned: this.#cfg.seeds.includes(s) })));
    for (const seed of this.#cfg.seeds) this.book.pin(seed);
    if (this.book.size === 0) await this.#loadFallback();
    const own = this.ownDescriptor();
    if (own) await this.push([own], this.#cfg.hop_limit);
    await this.tick();
    const every = (ms: number, fn: () => Promise<void>) => {
      const t = setInterval(() => {
        if (!this.#stopped) fn().catch((err) => this.#d.log.warn({ err: (err as Error).message }, 'bootstrap upkeep failed'));
      }, ms);
      t.unref();
      this.#timers.push(t);
    };
    every(this.#cfg.pull_interval_ms, async () => {
      const before = this.#own?.descriptor.issued_ts;
      const now = this.ownDescriptor();
      if (now && now.issued_ts !== before) await this.push([now], this.#cfg.hop_limit);
      await this.tick();
    });
    every(this.#cfg.feeler_interval_ms, () => this.feel());
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    for (const t of this.#timers) clearInterval(t);
    this.#timers = [];
    await this.saveCache().catch(() => {});
  }

  /** Known servers for the admin console and the client's server browser. */
  known(): Array<BookEntry & { anchor: boolean }> {
    const anchors = new Set(this.book.anchors());
    return this.book.entries().map((e) => ({ ...e, anchor: anchors.has(e.serverName) }));
  }
}

function mailboxOffer(
  capabilities: Config['bootstrap']['capabilities'],
  mailbox: Config['mailbox'],
): { capabilities: Config['bootstrap']['capabilities']; limits: Record<string, number> } {
  if (!mailbox.enabled) return { capabilities: capabilities.filter((c) => c !== 'mailbox'), limits: {} };
  return {
    capabilities: [...new Set([...capabilities, 'mailbox' as const])],
    limits: { mailbox_block_bytes: mailbox.block_bytes, mailbox_queue_quota: mailbox.queue_quota, mailbox_ttl_ms: mailbox.ttl_ms },
  };
}

function relayOffer(
  offer: { capabilities: Config['bootstrap']['capabilities']; limits: Record<string, number> },
  relay: Config['relay'],
): { capabilities: Config['bootstrap']['capabilities']; limits: Record<string, number> } {
  if (!relay.enabled) return offer;
  return {
    capabilities: [...new Set([...offer.capabilities, 'relay' as const])],
    limits: {
      ...offer.limits,
      relay_max_reservations: relay.max_reservations,
      relay_reservations_per_ip: relay.reservations_per_ip,
      relay_max_body_bytes: relay.max_body_bytes,
      relay_reservation_ttl_ms: relay.reservation_ttl_ms,
    },
  };
}
