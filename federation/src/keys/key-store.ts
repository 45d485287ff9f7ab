import type { KeyObject } from 'node:crypto';
import { isServerName, MAX_KEY_QUERY_DOCUMENTS, type ServerKeyDocument } from '@parley/schemas';
import {
  describeError,
  keyUsableAt,
  mergeKey,
  type VerifiedKey,
  type VerifyKeyDocumentResult,
  verifyKeyDocument,
  verifyNotarized,
} from './documents.js';
import { isEd25519Key } from './ed25519.js';
import {
  type DirectKeyFetcher,
  type FetchAdmission,
  KEY_STORE_DEFAULTS,
  type KeyDocumentPersistence,
  type KeyStoreEvent,
  type KeyStoreOptions,
  type LookupOptions,
  type NotaryKeyQuery,
  type StoredKeyDocument,
} from './key-store-types.js';
import { KEY_ID_PATTERN, type KeyRing, keyRingOf } from './signing-key.js';

/**
 * Other servers' keys, fetched on demand and cached (docs/protocol.md). The store does no I/O of its
 * own: it is handed a direct fetcher (`GET https://<server>/federation/v1/keys` through the
 * federation transport), optionally trusted notaries, and optionally a persistence for the
 * documents it accepts.
 *
 * - A document is fresh until its `valid_until_ts` (capped, see MAX_KEY_VALIDITY_MS); keys
 *   stay known after that for signatures made while they were valid, so history still
 *   verifies when their server is gone.
 * - One fetch per server at a time; every lookup that needs it waits for the same one.
 * - After a failed fetch, lookups that need a fetch answer "unknown" for `failureTtlMs`;
 *   after a successful one, another fetch (for a key ID the document lacked, or a document
 *   that went stale early) waits `refetchIntervalMs`. A peer naming random key IDs therefore
 *   costs one fetch per interval.
 * - Direct first; when that fails or is refused, each notary in order until one vouches.
 * - With notaries configured, a key ID seen for the first time (first contact, or a rotation)
 *   is trusted only once a notary vouches for the same public key under it (docs/protocol.md): a
 *   man in the middle of our first fetch must also fool the notary. When a notary vouches for
 *   other keys, its document wins. Without notaries the first key seen is trusted (trust on
 *   first use) and only a changed key, below, is caught.
 * - A key ID keeps the public key first accepted for it: a document carrying another public
 *   key under a known ID is refused whole (event `conflict`), never merged over the old one.
 * - Key documents from different fetches merge per key ID: an expiry, once seen, is kept
 *   (the earliest one wins), so a stale copy from a notary cannot revive a retired key.
 * - Lookups made on behalf of a remote caller (`requester`, e.g. its IP: every inbound request
 *   naming a new origin, every name a notary query asks about) make this server dial out, so
 *   they pass `admitFetch` (a rate limit) before a fetch starts, and after a failed fetch wait
 *   `requesterFailureTtlMs` before asking again. At most `maxConcurrentFetches` fetches run at
 *   once; the rest wait in a bounded line.
 */

// Documents cap keys at 16 each; merged history is capped too, so a server rotating on every
// fetch cannot grow its entry without bound.
const MAX_KEYS_PER_SERVER = 64;

interface LatestDocument {
  document: ServerKeyDocument;
  fetchedAt: number;
  freshUntil: number;
  tlsFingerprints: readonly string[];
}

interface ServerEntry {
  keys: Map<string, VerifiedKey>;
  latest?: LatestDocument;
  /** No fetch starts before this (failure TTL or refetch interval). */
  nextAttemptAt: number;
  /**
   * When the last fetch a remote caller caused found nothing usable; cleared by a success. Our
   * own failed lookups (a peer down while we deliver) do not set it, so that peer is not
   * refused for long once it is back and calls us.
   */
  failedAt?: number;
  /** The last fetch was ours (no remote caller) and failed; cleared by any later fetch. */
  failedLocally?: boolean;
  lastFailure?: string;
  inflight?: Promise<void>;
  loading?: Promise<void>;
}

type Accepted = Extract<VerifyKeyDocumentResult, { ok: true }>;

export class KeyStore {
  readonly #fetchDirect: DirectKeyFetcher;
  readonly #notaries: ReadonlyArray<{ name: string; ring: KeyRing }>;
  readonly #queryNotary: NotaryKeyQuery | undefined;
  readonly #persistence: KeyDocumentPersistence | undefined;
  readonly #now: () => number;
  readonly #failureTtlMs: number;
  readonly #refetchIntervalMs: number;
  readonly #maxServers: number;
  readonly #onEvent: (event: KeyStoreEvent) => void;
  readonly #admitFetch: FetchAdmission | undefined;
  readonly #requesterFailureTtlMs: number;
  readonly #maxConcurrent: number;
  readonly #maxQueued: number;
  #running = 0;
  readonly #queue: Array<() => void> = [];
  readonly #servers = new Map<string, ServerEntry>();

  constructor(options: KeyStoreOptions) {
    if (typeof options !== 'object' || options === null) throw new TypeError('options: expected an object');
    if (typeof options.fetchDirect !== 'function') throw new TypeError('options.fetchDirect: expected a function');
    const notaries = options.notaries ?? [];
    if (!Array.isArray(notaries)) throw new TypeError('options.notaries: expected an array');
    if (notaries.length > 0 && typeof options.queryNotary !== 'function') {
      throw new TypeError('options.queryNotary: expected a function when notaries are configured');
    }
    this.#notaries = notaries.map((notary, i) => {
      if (!isServerName(notary?.name)) throw new TypeError(`options.notaries[${i}].name: expected a server name`);
      const keys = notary.verifyKeys;
      if (typeof keys !== 'object' || keys === null || Object.keys(keys).length === 0) {
        throw new TypeError(`options.notaries[${i}].verifyKeys: expected at least one key`);
      }
      for (const [keyId, key] of Object.entries(keys)) {
        if (!KEY_ID_PATTERN.test(keyId)) throw new TypeError(`options.notaries[${i}].verifyKeys: ${keyId} is not a key ID`);
        if (!isEd25519Key(key, 'public')) {
          throw new TypeError(`options.notaries[${i}].verifyKeys.${keyId}: expected an Ed25519 public KeyObject`);
        }
      }
      return { name: notary.name, ring: keyRingOf({ [notary.name]: keys }) };
    });
    const persistence = options.persistence;
    if (persistence !== undefined && (typeof persistence?.load !== 'function' || typeof persistence.save !== 'function')) {
      throw new TypeError('options.persistence: expected { load, save }');
    }
    if (options.now !== undefined && typeof options.now !== 'function') throw new TypeError('options.now: expected a function');
    if (options.onEvent !== undefined && typeof options.onEvent !== 'function') throw new TypeError('options.onEvent: expected a function');
    this.#fetchDirect = options.fetchDirect;
    this.#queryNotary = options.queryNotary;
    this.#persistence = persistence;
    this.#now = options.now ?? Date.now;
    this.#failureTtlMs = integerOption(options.failureTtlMs, 'failureTtlMs', KEY_STORE_DEFAULTS.failureTtlMs);
    this.#refetchIntervalMs = integerOption(options.refetchIntervalMs, 'refetchIntervalMs', KEY_STORE_DEFAULTS.refetchIntervalMs);
    this.#maxServers = integerOption(options.maxServers, 'maxServers', KEY_STORE_DEFAULTS.maxServers);
    if (this.#maxServers === 0) throw new TypeError('options.maxServers: expected a positive integer');
    if (options.admitFetch !== undefined && typeof options.admitFetch !== 'function') {
      throw new TypeError('options.admitFetch: expected a function');
    }
    this.#admitFetch = options.admitFetch;
    this.#requesterFailureTtlMs = integerOption(
      options.requesterFailureTtlMs,
      'requesterFailureTtlMs',
      KEY_STORE_DEFAULTS.requesterFailureTtlMs,
    );
    this.#maxConcurrent = integerOption(options.maxConcurrentFetches, 'maxConcurrentFetches', KEY_STORE_DEFAULTS.maxConcurrentFetches);
    if (this.#maxConcurrent === 0) throw new TypeError('options.maxConcurrentFetches: expected a positive integer');
    this.#maxQueued = integerOption(options.maxQueuedFetches, 'maxQueuedFetches', KEY_STORE_DEFAULTS.maxQueuedFetches);
    const onEvent = options.onEvent;
    // A failing logger must not fail a key lookup.
    this.#onEvent = (event) => {
      try {
        onEvent?.(event);
      } catch {
        // ignored
      }
    };
  }

  /**
   * The public key `ed25519:<keyId>` of `server`, usable for a signature made at `at`
   * (default now), fetching the server's document when the cache cannot answer. Undefined when
   * unknown, including for anything that is not a server name or key ID: these usually come
   * off the wire. Never throws.
   */
  async getKey(server: string, keyId: string, options: LookupOptions = {}): Promise<KeyObject | undefined> {
    const at = options?.at ?? this.#now();
    if (!isServerName(server) || !isKeyId(keyId) || !Number.isSafeInteger(at)) return undefined;
    const entry = await this.#entry(server);
    const known = usableKey(entry, keyId, at);
    if (known) return known;
    await this.#refresh(server, entry, requesterOf(options));
    return usableKey(entry, keyId, at);
  }

  /**
   * Makes sure `keyIds` of `server` (or, with none, a fresh document) are cached, fetching if
   * needed, so that keyRing() can answer synchronously. True when they are.
   */
  async prefetch(server: string, keyIds: readonly string[] = [], options: LookupOptions = {}): Promise<boolean> {
    const at = options?.at ?? this.#now();
    if (!isServerName(server) || !Array.isArray(keyIds) || !keyIds.every(isKeyId) || !Number.isSafeInteger(at)) return false;
    const entry = await this.#entry(server);
    const satisfied = () =>
      keyIds.length === 0 ? isFresh(entry.latest, this.#now()) : keyIds.every((id) => usableKey(entry, id, at) !== undefined);
    if (satisfied()) return true;
    await this.#refresh(server, entry, requesterOf(options));
    return satisfied();
  }

  /**
   * The newest verified document of `server` while it is fresh, fetching when it is missing,
   * stale or valid for less than `minimumValidUntilTs`: what the notary endpoint signs and
   * returns. Never throws.
   */
  async getDocument(
    server: string,
    options: { minimumValidUntilTs?: number; requester?: string } = {},
  ): Promise<ServerKeyDocument | undefined> {
    if (!isServerName(server)) return undefined;
    const minimum = options?.minimumValidUntilTs ?? 0;
    const entry = await this.#entry(server);
    if (!isFresh(entry.latest, this.#now()) || entry.latest!.document.valid_until_ts < minimum) {
      await this.#refresh(server, entry, requesterOf(options));
    }
    return isFresh(entry.latest, this.#now()) ? entry.latest!.document : undefined;
  }

  /**
   * A KeyRing for the event and chain verifiers, answering from the cache only (call
   * prefetch() first). A key is returned when usable for a signature made at `at`, default
   * the moment of each lookup, so old keys are refused unless `at` is before their expiry:
   * verify history with a ring per timestamp (`keyRing({ at: event.origin_ts })`).
   */
  keyRing(options: { at?: number } = {}): KeyRing {
    const fixed = options?.at;
    return (server, keyId) => {
      const entry = typeof server === 'string' ? this.#servers.get(server) : undefined;
      const at = fixed ?? this.#now();
      if (!entry || !isKeyId(keyId) || !Number.isSafeInteger(at)) return undefined;
      return usableKey(entry, keyId, at);
    };
  }

  /** SHA-256 fingerprints of `server`'s TLS certificates from its newest verified document, if any. */
  tlsPins(server: string): readonly string[] | undefined {
    return typeof server === 'string' ? this.#servers.get(server)?.latest?.tlsFingerprints : undefined;
  }

  /** The newest verified document of `server` held now, fresh or not; never fetches. */
  cachedDocument(server: string): ServerKeyDocument | undefined {
    return typeof server === 'string' ? this.#servers.get(server)?.latest?.document : undefined;
  }

  /** Key IDs (without `ed25519:`) this store holds for `server`, current or retired. */
  knownKeyIds(server: string): string[] {
    return typeof server === 'string' ? [...(this.#servers.get(server)?.keys.keys() ?? [])] : [];
  }

  /** Fetches running and waiting for a slot, for metrics. */
  fetchStats(): { running: number; queued: number } {
    return { running: this.#running, queued: this.#queue.length };
  }

  /** Why the last fetch for `server` found nothing usable, for error messages; cleared by a success. */
  lastFailure(server: string): string | undefined {
    return typeof server === 'string' ? this.#servers.get(server)?.lastFailure : undefined;
  }

  async #entry(server: string): Promise<ServerEntry> {
    let entry = this.#servers.get(server);
    if (entry) {
      // Map order is the LRU order.
      this.#servers.delete(server);
      this.#servers.set(server, entry);
    } else {
      entry = { keys: new Map(), nextAttemptAt: Number.NEGATIVE_INFINITY };
      this.#servers.set(server, entry);
      if (this.#persistence) entry.loading = this.#loadPersisted(server, entry);
      this.#evict();
    }
    await entry.loading;
    return entry;
  }

  #evict(): void {
    for (const [name, entry] of this.#servers) {
      if (this.#servers.size <= this.#maxServers) return;
      if (!entry.inflight) this.#servers.delete(name);
    }
  }

  async #loadPersisted(server: string, entry: ServerEntry): Promise<void> {
    try {
      const stored = await this.#persistence!.load(server);
      if (!Array.isArray(stored)) throw new TypeError('load() did not return an array');
      const now = this.#now();
      // A row dated in the future would stretch the validity cap (MAX_KEY_VALIDITY_MS) past now + 7 days.
      const ordered = stored
        .filter((s: StoredKeyDocument) => Number.isSafeInteger(s?.fetchedAt) && s.fetchedAt <= now)
        .sort((a: StoredKeyDocument, b: StoredKeyDocument) => a.fetchedAt - b.fetchedAt);
      for (const { document, fetchedAt } of ordered) {
        // Verified as of when it was fetched: the same verdict as then, an expired one included.
        const verified = verifyKeyDocument(document, { expectedServer: server, now: fetchedAt });
        if (!verified.ok) this.#onEvent({ type: 'refused', server, source: 'persisted', reason: verified.reason });
        else if (this.#withoutConflicts(server, entry, [verified], 'persisted', []).length > 0) this.#accept(entry, [verified], fetchedAt);
      }
    } catch (err) {
      this.#onEvent({ type: 'failed', server, source: 'persistence', reason: describeError(err) });
    }
  }

  /**
   * Joins the fetch in flight, or starts one unless the failure TTL or refetch interval forbids
   * it; for a remote caller's lookup, also unless the longer negative cache or the admission
   * (rate limit) forbids it.
   */
  async #refresh(server: string, entry: ServerEntry, requester: string | undefined): Promise<void> {
    if (entry.inflight) return entry.inflight;
    const now = this.#now();
    // Only our own failure holds back a remote caller's lookup for no more than its own gates
    // (admission, the negative cache below): a request signed as a server we could not reach
    // is the first sign it is back, and refusing it would leave it waiting for our next try.
    const pastOwnFailure = requester !== undefined && entry.failedLocally === true;
    if (now < entry.nextAttemptAt && !pastOwnFailure) return;
    if (requester !== undefined) {
      if (entry.failedAt !== undefined && now < entry.failedAt + this.#requesterFailureTtlMs) {
        this.#limited(server, entry, requester, 'a recent fetch failed');
        return;
      }
      let admitted = true;
      try {
        admitted = this.#admitFetch === undefined || (await this.#admitFetch(server, requester)) === true;
      } catch {
        admitted = false;
      }
      if (!admitted) {
        this.#limited(server, entry, requester, 'rate limited');
        return;
      }
      // Another lookup may have started the fetch while this one was admitted.
      if (entry.inflight) return entry.inflight;
    }
    if (this.#running >= this.#maxConcurrent && this.#queue.length >= this.#maxQueued) {
      this.#limited(server, entry, requester ?? 'local', 'too many key fetches waiting');
      return;
    }
    entry.inflight = this.#fetchInTurn(server, entry, requester !== undefined).finally(() => {
      entry.inflight = undefined;
    });
    return entry.inflight;
  }

  #limited(server: string, entry: ServerEntry, requester: string, reason: string): void {
    entry.lastFailure ??= `not fetched: ${reason}`;
    this.#onEvent({ type: 'limited', server, source: 'admission', requester, reason });
    // A name that was never fetched holds no place in the cache (random names must not evict real ones).
    if (entry.keys.size === 0 && !entry.latest && !entry.inflight && entry.failedAt === undefined) this.#servers.delete(server);
  }

  async #fetchInTurn(server: string, entry: ServerEntry, forRequester: boolean): Promise<void> {
    // A notary's own keys skip the line: fetches in flight may be waiting to reach that notary
    // (its TLS pins come from its document), and must not wait behind themselves.
    if (this.#notaries.some((n) => n.name === server)) return this.#fetch(server, entry, forRequester);
    if (this.#running >= this.#maxConcurrent) await new Promise<void>((resolve) => this.#queue.push(resolve));
    else this.#running++;
    try {
      await this.#fetch(server, entry, forRequester);
    } finally {
      // The slot passes straight to the next in line, so #running never drops below the queue's need.
      const next = this.#queue.shift();
      if (next) next();
      else this.#running--;
    }
  }

  async #fetch(server: string, entry: ServerEntry, forRequester: boolean): Promise<void> {
    const reasons: string[] = [];
    const direct = this.#withoutConflicts(server, entry, await this.#fetchDirectly(server, reasons), 'direct', reasons);
    let accepted = direct;
    // A direct answer is enough when it holds nothing new to us, or no notary is configured
    // (trust on first use); otherwise a notary must vouch for its new keys first.
    if (this.#notaries.length > 0 && (direct.length === 0 || direct.some((doc) => hasNewKeys(entry, doc)))) {
      accepted = await this.#throughNotaries(server, entry, direct, reasons);
    }
    const fetchedAt = this.#now();
    if (accepted.length === 0) {
      entry.lastFailure = reasons.join('; ') || 'no key document';
      entry.nextAttemptAt = fetchedAt + this.#failureTtlMs;
      if (forRequester) entry.failedAt = fetchedAt;
      entry.failedLocally = !forRequester;
      return;
    }
    entry.lastFailure = undefined;
    entry.failedAt = undefined;
    entry.failedLocally = false;
    entry.nextAttemptAt = fetchedAt + this.#refetchIntervalMs;
    this.#accept(entry, accepted, fetchedAt);
    if (!this.#persistence) return;
    for (const verified of accepted) {
      try {
        await this.#persistence.save(server, { document: verified.document, fetchedAt });
      } catch (err) {
        this.#onEvent({ type: 'failed', server, source: 'persistence', reason: describeError(err) });
      }
    }
  }

  async #fetchDirectly(server: string, reasons: string[]): Promise<Accepted[]> {
    try {
      const verified = verifyKeyDocument(await this.#fetchDirect(server), { expectedServer: server, now: this.#now() });
      if (verified.ok) {
        this.#onEvent({ type: 'accepted', server, source: 'direct', validUntil: verified.validUntil });
        return [verified];
      }
      this.#refused(server, 'direct', verified.reason, reasons);
    } catch (err) {
      this.#failed(server, 'direct', describeError(err), reasons);
    }
    return [];
  }

  /**
   * Each notary in order until one vouches. With a direct answer in hand, the notary's
   * documents must carry every key of it that is new to us under the same ID for the direct
   * answer to be trusted; a notary vouching for other keys wins over the direct answer, which a
   * man in the middle may have served (docs/protocol.md).
   */
  async #throughNotaries(server: string, entry: ServerEntry, direct: Accepted[], reasons: string[]): Promise<Accepted[]> {
    const minimumValidUntilTs = direct.length > 0 ? Math.max(...direct.map((d) => d.document.valid_until_ts)) : undefined;
    for (const notary of this.#notaries) {
      const source = `notary:${notary.name}`;
      if (notary.name === server) {
        // A notary is not asked about itself (that request would need the very keys being
        // fetched, for its TLS pins): the keys configured for it are what confirms its own.
        const configured = direct.length > 0 && direct.every((doc) => newKeyIds(entry, doc).every((id) => configuredKey(notary, doc, id)));
        if (configured) return direct;
        continue;
      }
      const vouched = this.#withoutConflicts(
        server,
        entry,
        await this.#askNotary(notary, server, reasons, minimumValidUntilTs),
        source,
        reasons,
      );
      if (vouched.length === 0) continue;
      if (direct.length === 0) return vouched;
      const unconfirmed = direct.flatMap((doc) => newKeyIds(entry, doc).filter((id) => !vouched.some((v) => sameKey(v, doc, id))));
      if (unconfirmed.length === 0) return direct;
      const reason = `${source} vouches for other keys than the server served (${unconfirmed.map((id) => `ed25519:${id}`).join(', ')})`;
      reasons.push(`direct: ${reason}`);
      this.#onEvent({ type: 'unconfirmed', server, source: 'direct', reason });
      return vouched;
    }
    if (direct.length > 0) {
      const reason = `new keys not confirmed by any notary (${this.#notaries.map((n) => n.name).join(', ')})`;
      reasons.push(`direct: ${reason}`);
      this.#onEvent({ type: 'unconfirmed', server, source: 'direct', reason });
    }
    return [];
  }

  /** Drops documents that put another public key under a key ID we hold, and says so. */
  #withoutConflicts(server: string, entry: ServerEntry, docs: Accepted[], source: string, reasons: string[]): Accepted[] {
    return docs.filter((doc) => {
      const keyId = conflictingKeyId(entry, doc);
      if (keyId === undefined) return true;
      const reason = `key document of ${server} carries another public key under ed25519:${keyId}, which we hold: refused, the known key kept`;
      reasons.push(`${source}: ${reason}`);
      this.#onEvent({ type: 'conflict', server, source, keyId, reason });
      return false;
    });
  }

  async #askNotary(
    notary: { name: string; ring: KeyRing },
    server: string,
    reasons: string[],
    minimumValidUntilTs?: number,
  ): Promise<Accepted[]> {
    const source = `notary:${notary.name}`;
    const accepted: Accepted[] = [];
    try {
      const documents = await this.#queryNotary!(notary.name, server, minimumValidUntilTs === undefined ? {} : { minimumValidUntilTs });
      if (!Array.isArray(documents)) {
        this.#failed(server, source, 'answer is not a list of key documents', reasons);
        return [];
      }
      for (const document of documents.slice(0, MAX_KEY_QUERY_DOCUMENTS)) {
        const vouched = verifyNotarized(document, notary.name, notary.ring);
        if (!vouched.ok) {
          this.#refused(server, source, vouched.reason, reasons);
          continue;
        }
        const verified = verifyKeyDocument(document, { expectedServer: server, now: this.#now() });
        if (!verified.ok) {
          this.#refused(server, source, verified.reason, reasons);
          continue;
        }
        this.#onEvent({ type: 'accepted', server, source, validUntil: verified.validUntil });
        accepted.push(verified);
      }
      if (accepted.length === 0 && documents.length === 0) this.#failed(server, source, 'no key document', reasons);
    } catch (err) {
      this.#failed(server, source, describeError(err), reasons);
    }
    return accepted;
  }

  #refused(server: string, source: string, reason: string, reasons: string[]): void {
    reasons.push(`${source}: ${reason}`);
    this.#onEvent({ type: 'refused', server, source, reason });
  }

  #failed(server: string, source: string, reason: string, reasons: string[]): void {
    reasons.push(`${source}: ${reason}`);
    this.#onEvent({ type: 'failed', server, source, reason });
  }

  #accept(entry: ServerEntry, accepted: readonly Accepted[], fetchedAt: number): void {
    for (const verified of accepted) {
      for (const [keyId, key] of verified.keys) {
        const known = entry.keys.get(keyId);
        entry.keys.set(keyId, known ? mergeKey(known, key) : key);
      }
    }
    trimKeys(entry.keys);
    const best = accepted.reduce((a, b) => (b.document.valid_until_ts > a.document.valid_until_ts ? b : a));
    if (!entry.latest || fetchedAt >= entry.latest.fetchedAt) {
      // Copies, frozen: callers of getDocument() and tlsPins() share them and must not change the cache.
      entry.latest = {
        document: deepFreeze(structuredClone(best.document)),
        fetchedAt,
        freshUntil: best.validUntil,
        tlsFingerprints: Object.freeze([...best.tlsFingerprints]),
      };
    }
  }
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const item of Object.values(value)) deepFreeze(item);
    Object.freeze(value);
  }
  return value;
}

function integerOption(value: unknown, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new TypeError(`options.${name}: expected a non-negative integer`);
  }
  return value;
}

function isKeyId(keyId: unknown): keyId is string {
  return typeof keyId === 'string' && KEY_ID_PATTERN.test(keyId);
}

function isFresh(latest: LatestDocument | undefined, now: number): boolean {
  return latest !== undefined && now <= latest.freshUntil;
}

function usableKey(entry: ServerEntry, keyId: string, at: number): KeyObject | undefined {
  const key = entry.keys.get(keyId);
  return key && keyUsableAt(key, at) ? key.publicKey : undefined;
}

function requesterOf(options: LookupOptions | undefined): string | undefined {
  const requester = options?.requester;
  return typeof requester === 'string' && requester !== '' ? requester.slice(0, 200) : undefined;
}

/** Key IDs of `doc` that `entry` does not hold yet. */
function newKeyIds(entry: ServerEntry, doc: Accepted): string[] {
  return [...doc.keys.keys()].filter((id) => !entry.keys.has(id));
}

function hasNewKeys(entry: ServerEntry, doc: Accepted): boolean {
  return newKeyIds(entry, doc).length > 0;
}

/** The first key ID under which `doc` names another public key than the one `entry` holds. */
function conflictingKeyId(entry: ServerEntry, doc: Accepted): string | undefined {
  for (const [id, key] of doc.keys) {
    const known = entry.keys.get(id);
    if (known && !known.publicKey.equals(key.publicKey)) return id;
  }
  return undefined;
}

/** True when the configuration gives `notary` the same public key as `doc` under `keyId`. */
function configuredKey(notary: { name: string; ring: KeyRing }, doc: Accepted, keyId: string): boolean {
  const key = doc.keys.get(keyId);
  const configured = notary.ring(notary.name, keyId);
  return key !== undefined && configured?.equals(key.publicKey) === true;
}

/** True when `vouched` carries the same public key as `doc` under `keyId`. */
function sameKey(vouched: Accepted, doc: Accepted, keyId: string): boolean {
  const a = vouched.keys.get(keyId);
  const b = doc.keys.get(keyId);
  return a !== undefined && b !== undefined && a.publicKey.equals(b.publicKey);
}

function trimKeys(keys: Map<string, VerifiedKey>): void {
  if (keys.size <= MAX_KEYS_PER_SERVER) return;
  const byEnd = [...keys].sort((a, b) => a[1].validUntil - b[1].validUntil);
  for (const [keyId] of byEnd.slice(0, keys.size - MAX_KEYS_PER_SERVER)) keys.delete(keyId);
}
