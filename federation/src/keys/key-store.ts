import type { KeyObject } from 'node:crypto';
import { isServerName, MAX_KEY_QUERY_DOCUMENTS, type ServerKeyDocument } from '@parley/schemas';
import {
  describeError,
  keyUsableAt,
  type VerifiedKey,
  type VerifyKeyDocumentResult,
  verifyKeyDocument,
  verifyNotarized,
} from './documents.js';
import { isEd25519Key } from './ed25519.js';
import { KEY_ID_PATTERN, type KeyRing, keyRingOf } from './signing-key.js';

/**
 * Other servers' keys, fetched on demand and cached (DESIGN §5). The store does no I/O of its
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
 * - Key documents from different fetches merge per key ID: an expiry, once seen, is kept
 *   (the earliest one wins), so a stale copy from a notary cannot revive a retired key.
 */

export type DirectKeyFetcher = (serverName: string) => Promise<unknown>;
/** Asks a notary (`POST /federation/v1/keys/query`) and returns its `server_keys` list. */
export type NotaryKeyQuery = (notaryName: string, serverName: string) => Promise<unknown[]>;

export interface TrustedNotary {
  name: string;
  /** By key ID without the `ed25519:` prefix; from configuration, never from the notary. */
  verifyKeys: Readonly<Record<string, KeyObject>>;
}

export interface StoredKeyDocument {
  document: unknown;
  /** When the document was verified; it is verified again as of that moment on load. */
  fetchedAt: number;
}

/** Where the homeserver keeps accepted documents across restarts (e.g. a Postgres table). */
export interface KeyDocumentPersistence {
  load(serverName: string): Promise<readonly StoredKeyDocument[]>;
  save(serverName: string, entry: { document: ServerKeyDocument; fetchedAt: number }): Promise<void>;
}

/** For logs and metrics; `source` is `direct`, `notary:<name>`, `persisted` or `persistence`. */
export type KeyStoreEvent =
  | { type: 'accepted'; server: string; source: string; validUntil: number }
  | { type: 'refused'; server: string; source: string; reason: string }
  | { type: 'failed'; server: string; source: string; reason: string };

export interface KeyStoreOptions {
  fetchDirect: DirectKeyFetcher;
  notaries?: readonly TrustedNotary[];
  queryNotary?: NotaryKeyQuery;
  persistence?: KeyDocumentPersistence;
  /** Clock in ms since the epoch; tests pass a fake one. */
  now?: () => number;
  failureTtlMs?: number;
  refetchIntervalMs?: number;
  /** Servers kept in memory, least recently used dropped first. */
  maxServers?: number;
  onEvent?: (event: KeyStoreEvent) => void;
}

export const KEY_STORE_DEFAULTS = { failureTtlMs: 30_000, refetchIntervalMs: 60_000, maxServers: 10_000 } as const;
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
  async getKey(server: string, keyId: string, options: { at?: number } = {}): Promise<KeyObject | undefined> {
    const at = options?.at ?? this.#now();
    if (!isServerName(server) || !isKeyId(keyId) || !Number.isSafeInteger(at)) return undefined;
    const entry = await this.#entry(server);
    const known = usableKey(entry, keyId, at);
    if (known) return known;
    await this.#refresh(server, entry);
    return usableKey(entry, keyId, at);
  }

  /**
   * Makes sure `keyIds` of `server` (or, with none, a fresh document) are cached, fetching if
   * needed, so that keyRing() can answer synchronously. True when they are.
   */
  async prefetch(server: string, keyIds: readonly string[] = [], options: { at?: number } = {}): Promise<boolean> {
    const at = options?.at ?? this.#now();
    if (!isServerName(server) || !Array.isArray(keyIds) || !keyIds.every(isKeyId) || !Number.isSafeInteger(at)) return false;
    const entry = await this.#entry(server);
    const satisfied = () =>
      keyIds.length === 0 ? isFresh(entry.latest, this.#now()) : keyIds.every((id) => usableKey(entry, id, at) !== undefined);
    if (satisfied()) return true;
    await this.#refresh(server, entry);
    return satisfied();
  }

  /**
   * The newest verified document of `server` while it is fresh, fetching when it is missing,
   * stale or valid for less than `minimumValidUntilTs`: what the notary endpoint signs and
   * returns. Never throws.
   */
  async getDocument(server: string, options: { minimumValidUntilTs?: number } = {}): Promise<ServerKeyDocument | undefined> {
    if (!isServerName(server)) return undefined;
    const minimum = options?.minimumValidUntilTs ?? 0;
    const entry = await this.#entry(server);
    if (!isFresh(entry.latest, this.#now()) || entry.latest!.document.valid_until_ts < minimum) await this.#refresh(server, entry);
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
        if (verified.ok) this.#accept(entry, [verified], fetchedAt);
        else this.#onEvent({ type: 'refused', server, source: 'persisted', reason: verified.reason });
      }
    } catch (err) {
      this.#onEvent({ type: 'failed', server, source: 'persistence', reason: describeError(err) });
    }
  }

  /** Joins the fetch in flight, or starts one unless the failure TTL or refetch interval forbids it. */
  #refresh(server: string, entry: ServerEntry): Promise<void> {
    if (entry.inflight) return entry.inflight;
    if (this.#now() < entry.nextAttemptAt) return Promise.resolve();
    entry.inflight = this.#fetch(server, entry).finally(() => {
      entry.inflight = undefined;
    });
    return entry.inflight;
  }

  async #fetch(server: string, entry: ServerEntry): Promise<void> {
    const reasons: string[] = [];
    let accepted = await this.#fetchDirectly(server, reasons);
    for (const notary of this.#notaries) {
      if (accepted.length > 0) break;
      accepted = await this.#askNotary(notary, server, reasons);
    }
    const fetchedAt = this.#now();
    if (accepted.length === 0) {
      entry.lastFailure = reasons.join('; ') || 'no key document';
      entry.nextAttemptAt = fetchedAt + this.#failureTtlMs;
      return;
    }
    entry.lastFailure = undefined;
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

  async #askNotary(notary: { name: string; ring: KeyRing }, server: string, reasons: string[]): Promise<Accepted[]> {
    const source = `notary:${notary.name}`;
    const accepted: Accepted[] = [];
    try {
      const documents = await this.#queryNotary!(notary.name, server);
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

/**
 * Two documents describing one key ID. A retirement is kept once seen, the earliest one
 * winning, since only the server (holding a current key) can sign one; otherwise the longer
 * validity. A different public key under the same ID is a server that reused an ID: the
 * newer document wins.
 */
function mergeKey(known: VerifiedKey, incoming: VerifiedKey): VerifiedKey {
  if (!known.publicKey.equals(incoming.publicKey)) return incoming;
  if (known.expired && incoming.expired) return known.validUntil <= incoming.validUntil ? known : incoming;
  if (known.expired) return known;
  if (incoming.expired) return incoming;
  return known.validUntil >= incoming.validUntil ? known : incoming;
}

function trimKeys(keys: Map<string, VerifiedKey>): void {
  if (keys.size <= MAX_KEYS_PER_SERVER) return;
  const byEnd = [...keys].sort((a, b) => a[1].validUntil - b[1].validUntil);
  for (const [keyId] of byEnd.slice(0, keys.size - MAX_KEYS_PER_SERVER)) keys.delete(keyId);
}
