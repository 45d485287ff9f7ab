import type { AccessTokenLookup } from '../repositories/tokens.js';
import type { Clock } from './clock.js';
import type { ControlMessage } from './stream-bus.js';

export interface TokenCacheSettings {
  /** Most tokens held; the least recently used goes first. */
  maxEntries: number;
  /** How long a looked-up token is trusted without reading the database again. */
  ttlMs: number;
}

export const DEFAULT_TOKEN_CACHE: TokenCacheSettings = { maxEntries: 10_000, ttlMs: 30_000 };

interface Entry {
  row: AccessTokenLookup;
  cachedTs: number;
}

/**
 * Access tokens this process looked up recently, so a busy client's requests do not each
 * read the token, its device and its user. Only tokens that authenticated are held; the
 * secret is still compared against the stored hash on every request, and expiry is still
 * judged by the clock.
 *
 * Revocation wins over the cache: every revocation message (device, user, refresh, account
 * flags) drops the user's entries here at once, in the revoking process before it answers
 * and in every other process when the message arrives over the bus. `usable()` is false while
 * the bus may be missing messages (Redis subscriber down), and a lost connection clears the
 * cache. A lookup that raced a revocation is not stored: `epoch()` is read before the
 * database and `put` refuses a row read before the latest invalidation.
 */
export class AccessTokenCache {
  private readonly entries = new Map<string, Entry>();
  /** Database reads under way, shared by requests that carry the same token meanwhile. */
  private readonly loading = new Map<string, { epoch: number; row: Promise<AccessTokenLookup | undefined> }>();
  private invalidations = 0;

  constructor(
    private readonly clock: Clock,
    private readonly settings: TokenCacheSettings = DEFAULT_TOKEN_CACHE,
    /** Whether revocations from other processes are arriving (always true without Redis). */
    private readonly usable: () => boolean = () => true,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  /** A counter that moves on every invalidation: pass it back to `put`. */
  epoch(): number {
    return this.invalidations;
  }

  get(tokenId: string): AccessTokenLookup | undefined {
    if (!this.usable()) return undefined;
    const entry = this.entries.get(tokenId);
    if (!entry) return undefined;
    if (this.clock.now() - entry.cachedTs >= this.settings.ttlMs) {
      this.entries.delete(tokenId);
      return undefined;
    }
    // Most recently used goes last (Map keeps insertion order).
    this.entries.delete(tokenId);
    this.entries.set(tokenId, entry);
    return entry.row;
  }

  /**
   * Reads a token that is not cached, sharing one read among the requests that present the
   * same token ID while it runs (a client's burst of sends starts cold). A read that began
   * before an invalidation is not shared with requests that arrive after it. Pass `epoch`
   * back to `put` once the caller has checked the secret.
   */
  load(
    tokenId: string,
    read: (tokenId: string) => Promise<AccessTokenLookup | undefined>,
  ): { epoch: number; row: Promise<AccessTokenLookup | undefined> } {
    const pending = this.loading.get(tokenId);
    if (pending && pending.epoch === this.invalidations) return pending;
    const started = { epoch: this.invalidations, row: read(tokenId) };
    this.loading.set(tokenId, started);
    const forget = () => {
      if (this.loading.get(tokenId) === started) this.loading.delete(tokenId);
    };
    started.row.then(forget, forget);
    return started;
  }

  /** Stores a row read from the database, unless something was invalidated since `epoch`. */
  put(row: AccessTokenLookup, epoch: number): void {
    if (epoch !== this.invalidations || !this.usable() || this.settings.maxEntries <= 0) return;
    this.entries.delete(row.id);
    this.entries.set(row.id, { row, cachedTs: this.clock.now() });
    while (this.entries.size > this.settings.maxEntries) {
      const oldest = this.entries.keys().next().value as string;
      this.entries.delete(oldest);
    }
  }

  /** Drops whatever a revocation message covers (all of the user's tokens, to be simple). */
  onControl(msg: ControlMessage): void {
    this.invalidations += 1;
    for (const [id, entry] of this.entries) if (entry.row.user_id === msg.user_id) this.entries.delete(id);
  }

  /** Drops everything (messages may have been lost). */
  clear(): void {
    this.invalidations += 1;
    this.entries.clear();
  }
}
