import { createHmac } from 'node:crypto';
import type { BootstrapCapability, BootstrapDescriptor } from '@parley/schemas';
import { networkGroup } from './group.js';

/**
 * The servers this server knows from bootstrap lists, kept the way Bitcoin Core's addrman
 * keeps peer addresses so that one party announcing thousands of servers cannot fill it
 * (an eclipse):
 *
 * - Two tables. "new" holds servers we have only heard of; "tried" holds servers we have
 *   talked to successfully. Each is a fixed grid of buckets × slots.
 * - Where an entry may sit is a hash keyed with a secret only this server knows, over the
 *   entry's network group (/16 IPv4, /32 IPv6, registrable domain) and, in "new", over the
 *   group of the peer that told us about it. Entries one source group announces land in at
 *   most `newBucketsPerSourceGroup` buckets; entries of one network group reach at most
 *   `triedBucketsPerGroup` tried buckets. Without the secret, an attacker cannot aim.
 * - A slot's occupant is replaced in "new" only when it is terrible (expired, or failing
 *   for days). Moving a newcomer into an occupied "tried" slot needs a test of the incumbent
 *   first: the incumbent stays as long as it still answers (test-before-evict).
 * - Pinned entries (an admin's choice, configured seeds) are kept whatever happens; two anchor
 *   peers are remembered across restarts.
 *
 * Pure: no I/O; the caller persists `toJSON()` and gives the clock and randomness.
 */

export interface AddressBookOptions {
  /** 32 random bytes, kept across restarts with the cache. */
  secret: Uint8Array;
  now: () => number;
  random: () => number;
  newBuckets?: number;
  triedBuckets?: number;
  bucketSize?: number;
  newBucketsPerSourceGroup?: number;
  triedBucketsPerGroup?: number;
}

export interface BookEntry {
  serverName: string;
  descriptor: BootstrapDescriptor;
  group: string;
  /** The server that told us (`seed`, `fallback`, `admin` for configured ones). */
  source: string;
  sourceGroup: string;
  table: 'new' | 'tried';
  bucket: number;
  slot: number;
  addedTs: number;
  lastSuccessTs: number | null;
  lastAttemptTs: number | null;
  failures: number;
  pinned: boolean;
}

export type AddOutcome = { kind: 'added' | 'updated'; entry: BookEntry } | { kind: 'replay' | 'bucket_full' | 'expired'; reason: string };

export interface Collision {
  newcomer: string;
  incumbent: string;
}

const TERRIBLE_AFTER_FAILURES = 3;
const TERRIBLE_SILENCE_MS = 7 * 86_400_000;

export class AddressBook {
  readonly #secret: Buffer;
  readonly #now: () => number;
  readonly #random: () => number;
  readonly newBuckets: number;
  readonly triedBuckets: number;
  readonly bucketSize: number;
  readonly newBucketsPerSourceGroup: number;
  readonly triedBucketsPerGroup: number;
  readonly #entries = new Map<string, BookEntry>();
  // "<table>:<bucket>:<slot>" → server name
  readonly #slots = new Map<string, string>();
  readonly #collisions = new Map<string, string>();
  #anchors: string[] = [];

  constructor(o: AddressBookOptions) {
    if (!(o.secret instanceof Uint8Array) || o.secret.length < 16) throw new TypeError('secret: expected at least 16 random bytes');
    if (typeof o.now !== 'function' || typeof o.random !== 'function') throw new TypeError('now, random: expected functions');
    this.#secret = Buffer.from(o.secret);
    this.#now = o.now;
    this.#random = o.random;
    this.newBuckets = o.newBuckets ?? 256;
    this.triedBuckets = o.triedBuckets ?? 64;
    this.bucketSize = o.bucketSize ?? 16;
    this.newBucketsPerSourceGroup = o.newBucketsPerSourceGroup ?? 16;
    this.triedBucketsPerGroup = o.triedBucketsPerGroup ?? 4;
  }

  #hash(...parts: Array<string | number>): number {
    return createHmac('sha256', this.#secret).update(parts.join('\u0000')).digest().readUInt32BE(0);
  }

  #newBucket(group: string, sourceGroup: string): number {
    const spread = this.#hash('new1', group, sourceGroup) % this.newBucketsPerSourceGroup;
    return this.#hash('new2', sourceGroup, spread) % this.newBuckets;
  }

  #triedBucket(serverName: string, group: string): number {
    const spread = this.#hash('tried1', serverName) % this.triedBucketsPerGroup;
    return this.#hash('tried2', group, spread) % this.triedBuckets;
  }

  #slot(table: 'new' | 'tried', bucket: number, serverName: string): number {
    return this.#hash('slot', table, bucket, serverName) % this.bucketSize;
  }

  #isTerrible(e: BookEntry): boolean {
    if (e.pinned) return false;
    const now = this.#now();
    if (e.descriptor.valid_until_ts <= now) return true;
    return e.failures >= TERRIBLE_AFTER_FAILURES && (e.lastSuccessTs === null || now - e.lastSuccessTs > TERRIBLE_SILENCE_MS);
  }

  #place(e: BookEntry, table: 'new' | 'tried', bucket: number, slot: number): void {
    this.#slots.delete(`${e.table}:${e.bucket}:${e.slot}`);
    e.table = table;
    e.bucket = bucket;
    e.slot = slot;
    this.#slots.set(`${table}:${bucket}:${slot}`, e.serverName);
  }

  #drop(serverName: string): void {
    const e = this.#entries.get(serverName);
    if (!e) return;
    this.#slots.delete(`${e.table}:${e.bucket}:${e.slot}`);
    this.#entries.delete(serverName);
    this.#collisions.delete(serverName);
    this.#anchors = this.#anchors.filter((a) => a !== serverName);
  }

  /**
   * Adds a verified descriptor heard from `source` (whose endpoint host gives its group). A
   * newer descriptor of a known server replaces its descriptor in place; an older or equal
   * one is a replay.
   */
  add(descriptor: BootstrapDescriptor, source: { name: string; host: string }, options: { pinned?: boolean } = {}): AddOutcome {
    const now = this.#now();
    if (descriptor.valid_until_ts <= now) return { kind: 'expired', reason: `${descriptor.server_name}: expired` };
    const existing = this.#entries.get(descriptor.server_name);
    if (existing) {
      if (descriptor.issued_ts <= existing.descriptor.issued_ts) {
        if (options.pinned) existing.pinned = true;
        return { kind: 'replay', reason: `${descriptor.server_name}: not newer than the descriptor held` };
      }
      existing.descriptor = descriptor;
      if (options.pinned) existing.pinned = true;
      return { kind: 'updated', entry: existing };
    }
    const group = networkGroup(descriptor.endpoints[0]?.host ?? descriptor.server_name);
    const sourceGroup =
      source.name === 'seed' || source.name === 'fallback' || source.name === 'admin' ? source.name : networkGroup(source.host);
    const bucket = this.#newBucket(group, sourceGroup);
    const slot = this.#slot('new', bucket, descriptor.server_name);
    const occupantName = this.#slots.get(`new:${bucket}:${slot}`);
    if (occupantName !== undefined) {
      const occupant = this.#entries.get(occupantName) as BookEntry;
      if (!options.pinned && !this.#isTerrible(occupant)) {
        return { kind: 'bucket_full', reason: `${descriptor.server_name}: its slot holds ${occupantName}, which still answers` };
      }
      this.#drop(occupantName);
    }
    const entry: BookEntry = {
      serverName: descriptor.server_name,
      descriptor,
      group,
      source: source.name,
      sourceGroup,
      table: 'new',
      bucket,
      slot,
      addedTs: now,
      lastSuccessTs: null,
      lastAttemptTs: null,
      failures: 0,
      pinned: options.pinned === true,
    };
    this.#entries.set(entry.serverName, entry);
    this.#slots.set(`new:${bucket}:${slot}`, entry.serverName);
    return { kind: 'added', entry };
  }

  /** A contact with the server failed. */
  failed(serverName: string): void {
    const e = this.#entries.get(serverName);
    if (!e) return;
    e.failures++;
    e.lastAttemptTs = this.#now();
  }

  /**
   * A contact with the server succeeded: it moves to "tried" — unless its tried slot holds
   * another server, which must first fail a test (see collisions() / resolveCollision()).
   */
  good(serverName: string): { moved: boolean; collision?: Collision } {
    const e = this.#entries.get(serverName);
    if (!e) return { moved: false };
    const now = this.#now();
    e.failures = 0;
    e.lastSuccessTs = now;
    e.lastAttemptTs = now;
    if (e.table === 'tried') return { moved: false };
    const bucket = this.#triedBucket(serverName, e.group);
    const slot = this.#slot('tried', bucket, serverName);
    const incumbent = this.#slots.get(`tried:${bucket}:${slot}`);
    if (incumbent !== undefined && incumbent !== serverName) {
      this.#collisions.set(serverName, incumbent);
      return { moved: false, collision: { newcomer: serverName, incumbent } };
    }
    this.#place(e, 'tried', bucket, slot);
    return { moved: true };
  }

  /** Newcomers waiting for their tried slot's incumbent to be tested. */
  collisions(): Collision[] {
    return [...this.#collisions].map(([newcomer, incumbent]) => ({ newcomer, incumbent }));
  }

  /**
   * The incumbent of a collision was tested: if it still answers it keeps its slot and the
   * newcomer stays in "new"; if not, it goes back to "new" (or is dropped when its new slot is
   * taken) and the newcomer takes the tried slot.
   */
  resolveCollision(newcomer: string, incumbentAnswered: boolean): void {
    const incumbentName = this.#collisions.get(newcomer);
    this.#collisions.delete(newcomer);
    if (incumbentName === undefined || incumbentAnswered) return;
    const incumbent = this.#entries.get(incumbentName);
    const entry = this.#entries.get(newcomer);
    if (!entry || !incumbent || incumbent.pinned) return;
    incumbent.failures++;
    const { bucket, slot } = incumbent;
    const newBucket = this.#newBucket(incumbent.group, incumbent.sourceGroup);
    const newSlot = this.#slot('new', newBucket, incumbentName);
    if (this.#slots.has(`new:${newBucket}:${newSlot}`)) this.#drop(incumbentName);
    else this.#place(incumbent, 'new', newBucket, newSlot);
    this.#place(entry, 'tried', bucket, slot);
  }

  pin(serverName: string, pinned = true): boolean {
    const e = this.#entries.get(serverName);
    if (!e) return false;
    e.pinned = pinned;
    return true;
  }

  /** Removes an entry (an admin's prune). */
  remove(serverName: string): boolean {
    const had = this.#entries.has(serverName);
    this.#drop(serverName);
    return had;
  }

  /** Drops expired descriptors (pinned ones stay, flagged by their validity, until renewed). */
  expire(): string[] {
    const now = this.#now();
    const gone = [...this.#entries.values()].filter((e) => !e.pinned && e.descriptor.valid_until_ts <= now).map((e) => e.serverName);
    for (const name of gone) this.#drop(name);
    return gone;
  }

  /** Two tried servers kept across restarts and contacted first at the next start. */
  setAnchors(names: string[]): void {
    this.#anchors = names.filter((n) => this.#entries.get(n)?.table === 'tried').slice(0, 2);
  }

  anchors(): string[] {
    return [...this.#anchors];
  }

  get(serverName: string): BookEntry | undefined {
    return this.#entries.get(serverName);
  }

  entries(): BookEntry[] {
    return [...this.#entries.values()];
  }

  get size(): number {
    return this.#entries.size;
  }

  /**
   * Up to `n` distinct entries, chosen at random, each draw from "tried" or "new" with even
   * odds (when both have candidates), as addrman's Select does; optionally only those offering
   * a capability.
   */
  select(n: number, filter: { capability?: BootstrapCapability; exclude?: ReadonlySet<string> } = {}): BookEntry[] {
    const ok = (e: BookEntry) =>
      !filter.exclude?.has(e.serverName) && (filter.capability === undefined || e.descriptor.capabilities.includes(filter.capability));
    const tried = this.entries().filter((e) => e.table === 'tried' && ok(e));
    const fresh = this.entries().filter((e) => e.table === 'new' && ok(e));
    const out: BookEntry[] = [];
    while (out.length < n && (tried.length > 0 || fresh.length > 0)) {
      const from = tried.length === 0 ? fresh : fresh.length === 0 ? tried : this.#random() < 0.5 ? tried : fresh;
      const i = Math.floor(this.#random() * from.length);
      out.push(from.splice(i, 1)[0] as BookEntry);
    }
    return out;
  }

  /** One entry of "new" to probe (a feeler), or null. */
  feeler(): BookEntry | null {
    const fresh = this.entries().filter((e) => e.table === 'new');
    return fresh.length === 0 ? null : (fresh[Math.floor(this.#random() * fresh.length)] as BookEntry);
  }

  /** Share of the tables' entries whose source (new) or own (tried) group is `group`. */
  shareOf(group: string): { new: number; tried: number; newSlots: number; triedSlots: number } {
    const all = this.entries();
    return {
      new: all.filter((e) => e.table === 'new' && e.sourceGroup === group).length,
      tried: all.filter((e) => e.table === 'tried' && e.group === group).length,
      newSlots: this.newBuckets * this.bucketSize,
      triedSlots: this.triedBuckets * this.bucketSize,
    };
  }

  toJSON(): { saved_ts: number; entries: BookEntry[]; anchors: string[] } {
    return { saved_ts: this.#now(), entries: this.entries(), anchors: this.anchors() };
  }

  /**
   * Restores a cache saved by toJSON() when it is younger than `maxAgeMs`: entries go back
   * to the slots the secret gives them (a cache from another secret is re-placed, not
   * trusted), expired descriptors are left out. Answers false for a stale or broken cache.
   */
  load(saved: unknown, maxAgeMs: number): boolean {
    const s = saved as { saved_ts?: unknown; entries?: unknown; anchors?: unknown } | null;
    if (typeof s?.saved_ts !== 'number' || !Array.isArray(s.entries) || this.#now() - s.saved_ts > maxAgeMs) return false;
    for (const raw of s.entries as BookEntry[]) {
      if (typeof raw?.serverName !== 'string' || typeof raw.descriptor !== 'object' || raw.descriptor === null) continue;
      const added = this.add(
        raw.descriptor,
        { name: raw.source, host: raw.sourceGroup.replace(/^[a-z0-9]+:/, '') },
        { pinned: raw.pinned === true },
      );
      if (added.kind !== 'added') continue;
      const e = added.entry;
      e.sourceGroup = raw.sourceGroup;
      e.lastSuccessTs = typeof raw.lastSuccessTs === 'number' ? raw.lastSuccessTs : null;
      e.failures = typeof raw.failures === 'number' ? raw.failures : 0;
      if (raw.table === 'tried') {
        const { lastSuccessTs } = e;
        this.good(e.serverName);
        e.lastSuccessTs = lastSuccessTs;
        this.#collisions.delete(e.serverName);
      }
    }
    this.setAnchors(Array.isArray(s.anchors) ? (s.anchors as unknown[]).filter((a): a is string => typeof a === 'string') : []);
    return true;
  }
}

/** Token buckets per announcing peer: how many descriptors each may make us verify. */
export class AnnounceLimiter {
  readonly #buckets = new Map<string, { tokens: number; at: number }>();
  constructor(
    private readonly burst: number,
    private readonly perMinute: number,
    private readonly now: () => number,
    private readonly maxPeers = 10_000,
  ) {}

  /** Takes up to `want` tokens for `peer`; answers how many it got. */
  take(peer: string, want: number): number {
    const now = this.now();
    let b = this.#buckets.get(peer);
    if (!b) {
      if (this.#buckets.size >= this.maxPeers) this.#buckets.delete(this.#buckets.keys().next().value as string);
      b = { tokens: this.burst, at: now };
      this.#buckets.set(peer, b);
    }
    b.tokens = Math.min(this.burst, b.tokens + ((now - b.at) / 60_000) * this.perMinute);
    b.at = now;
    const got = Math.max(0, Math.min(want, Math.floor(b.tokens)));
    b.tokens -= got;
    return got;
  }
}
