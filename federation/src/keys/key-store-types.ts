import type { KeyObject } from 'node:crypto';
import type { ServerKeyDocument } from '@parley/schemas';

/** The shapes the KeyStore (key-store.ts) is configured with and reports through, and its defaults. */

export type DirectKeyFetcher = (serverName: string) => Promise<unknown>;
/**
 * Asks a notary (`POST /federation/v1/keys/query`) and returns its `server_keys` list.
 * `minimumValidUntilTs` asks it for a document at least that fresh (it refetches an older one).
 */
export type NotaryKeyQuery = (notaryName: string, serverName: string, criteria?: { minimumValidUntilTs?: number }) => Promise<unknown[]>;

/** Decides whether a fetch on behalf of `requester` may start (a rate limit); false refuses it. */
export type FetchAdmission = (server: string, requester: string) => boolean | Promise<boolean>;

/** Who a lookup is for: `requester` set means a remote, unauthenticated caller caused it. */
export interface LookupOptions {
  at?: number;
  requester?: string;
}

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
  | { type: 'failed'; server: string; source: string; reason: string }
  /** A document put another public key under a key ID we already hold: refused, the old key kept. */
  | { type: 'conflict'; server: string; source: string; keyId: string; reason: string }
  /** A directly fetched document with keys new to us that no notary vouched for: not trusted. */
  | { type: 'unconfirmed'; server: string; source: string; reason: string }
  /** A fetch a remote caller would have caused was not started (rate limit, negative cache, queue full). */
  | { type: 'limited'; server: string; source: 'admission'; requester: string; reason: string };

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
  /** Rate limit for fetches on behalf of remote callers; default: all admitted. */
  admitFetch?: FetchAdmission;
  /** After a failed fetch, remote callers cause no new fetch of that server for this long. */
  requesterFailureTtlMs?: number;
  /** Fetches (direct, then notaries) running at once. */
  maxConcurrentFetches?: number;
  /** Fetches waiting for a slot; beyond it a lookup answers "unknown" at once. */
  maxQueuedFetches?: number;
}

export const KEY_STORE_DEFAULTS = {
  failureTtlMs: 30_000,
  refetchIntervalMs: 60_000,
  maxServers: 10_000,
  requesterFailureTtlMs: 300_000,
  maxConcurrentFetches: 16,
  maxQueuedFetches: 1_000,
} as const;
