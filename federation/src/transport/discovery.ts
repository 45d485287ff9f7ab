import { FederationError } from './errors.js';
import { SILENT_LOG, type TransportLog } from './log.js';
import { DEFAULT_FEDERATION_PORT, formatHostPort, parseServerName } from './server-name.js';

/**
 * Where to reach a server (docs/protocol.md), as a readable fallback chain that logs each step:
 *
 *   1. the static map from config (`name → host:port`), which tests and LAN set-ups use;
 *   2. an IP literal or a name with an explicit port is used as it is (as in Matrix: there is
 *      nothing to delegate);
 *   3. `GET https://<name>/.well-known/parley/server` → `{ "server": "host[:port]" }`;
 *   4. the name itself on port 8448.
 *
 * Answers are cached: a static entry forever, a well-known answer for an hour, and the
 * fallback after a failed well-known for five minutes, so a peer fixing its delegation is
 * picked up soon while a peer without one is not asked on every request.
 */

export interface ResolvedServer {
  serverName: string;
  /** What to resolve and dial: a DNS name or an IP literal (no brackets). */
  host: string;
  port: number;
  /**
   * The name the certificate must carry (and, for DNS names, the SNI). A well-known
   * delegation moves it to the delegated host, as Matrix does; a static entry that maps a
   * name to an IP literal keeps the server's own host, like /etc/hosts would.
   */
  tlsServername: string;
  source: 'static' | 'literal' | 'well-known' | 'default';
}

/** Fetches and parses `https://<serverName>/.well-known/parley/server`; throws on any failure. */
export type WellKnownFetcher = (serverName: string) => Promise<unknown>;

export interface DiscoveryOptions {
  /** `{ "b.test": "127.0.0.1:8482" }`; a value without a port means 8448. */
  staticServers?: Readonly<Record<string, string>>;
  fetchWellKnown: WellKnownFetcher;
  log?: TransportLog;
  /** Default 1 h. */
  cacheTtlMs?: number;
  /** How long the fallback after a failed well-known lookup is kept; default 5 min. */
  failureTtlMs?: number;
  /** Default 10,000 names; the oldest entry goes first. */
  maxCacheEntries?: number;
  now?: () => number;
}

export const WELL_KNOWN_PATH = '/.well-known/parley/server';

interface CacheEntry {
  value: ResolvedServer;
  expires: number;
}

export class ServerDiscovery {
  readonly #static = new Map<string, ResolvedServer>();
  readonly #fetchWellKnown: WellKnownFetcher;
  readonly #log: TransportLog;
  readonly #ttl: number;
  readonly #failureTtl: number;
  readonly #maxEntries: number;
  readonly #now: () => number;
  readonly #cache = new Map<string, CacheEntry>();
  readonly #pending = new Map<string, Promise<ResolvedServer>>();

  constructor(options: DiscoveryOptions) {
    if (typeof options?.fetchWellKnown !== 'function') throw new TypeError('options.fetchWellKnown: expected a function');
    for (const [name, target] of Object.entries(options.staticServers ?? {})) {
      this.#static.set(name, staticEntry(name, target));
    }
    this.#fetchWellKnown = options.fetchWellKnown;
    this.#log = options.log ?? SILENT_LOG;
    this.#ttl = positive(options.cacheTtlMs ?? 3_600_000, 'options.cacheTtlMs');
    this.#failureTtl = positive(options.failureTtlMs ?? 300_000, 'options.failureTtlMs');
    this.#maxEntries = positive(options.maxCacheEntries ?? 10_000, 'options.maxCacheEntries');
    this.#now = options.now ?? Date.now;
  }

  /** Resolves `serverName`; rejects only with a FederationError of kind 'dns' for a name that is not a server name. */
  async resolve(serverName: string): Promise<ResolvedServer> {
    const fixed = this.#static.get(serverName);
    if (fixed) {
      this.#log.debug({ destination: serverName, target: formatHostPort(fixed.host, fixed.port) }, 'discovery: static map');
      return fixed;
    }
    const cached = this.#cache.get(serverName);
    if (cached && cached.expires > this.#now()) return cached.value;
    const pending = this.#pending.get(serverName);
    if (pending) return pending;
    const lookup = this.#discover(serverName).finally(() => this.#pending.delete(serverName));
    this.#pending.set(serverName, lookup);
    return lookup;
  }

  /** Drops a cached answer, e.g. after the address it gave stopped answering. */
  forget(serverName: string): void {
    this.#cache.delete(serverName);
  }

  async #discover(serverName: string): Promise<ResolvedServer> {
    const name = parseServerName(serverName);
    if (!name)
      throw new FederationError(
        'dns',
        typeof serverName === 'string' ? serverName.slice(0, 300) : `(${typeof serverName})`,
        'not a valid server name',
      );
    if (name.ipVersion !== 0 || name.port !== undefined) {
      const port = name.port ?? DEFAULT_FEDERATION_PORT;
      this.#log.debug({ destination: serverName }, 'discovery: IP literal or explicit port, no delegation');
      return this.#remember(serverName, { serverName, host: name.host, port, tlsServername: name.host, source: 'literal' }, this.#ttl);
    }
    const fallback: ResolvedServer = {
      serverName,
      host: name.host,
      port: DEFAULT_FEDERATION_PORT,
      tlsServername: name.host,
      source: 'default',
    };
    let document: unknown;
    try {
      document = await this.#fetchWellKnown(serverName);
    } catch (err) {
      this.#log.info(
        { destination: serverName, reason: (err as Error).message, target: formatHostPort(fallback.host, fallback.port) },
        'discovery: no well-known delegation, using the name itself',
      );
      return this.#remember(serverName, fallback, this.#failureTtl);
    }
    const delegated = parseWellKnown(document);
    if (!delegated) {
      this.#log.warn(
        { destination: serverName },
        'discovery: well-known document is not { "server": "host[:port]" }, using the name itself',
      );
      return this.#remember(serverName, fallback, this.#failureTtl);
    }
    const port = delegated.port ?? DEFAULT_FEDERATION_PORT;
    this.#log.info({ destination: serverName, target: formatHostPort(delegated.host, port) }, 'discovery: well-known delegation');
    return this.#remember(
      serverName,
      { serverName, host: delegated.host, port, tlsServername: delegated.host, source: 'well-known' },
      this.#ttl,
    );
  }

  #remember(serverName: string, value: ResolvedServer, ttl: number): ResolvedServer {
    this.#cache.delete(serverName);
    while (this.#cache.size >= this.#maxEntries) this.#cache.delete(this.#cache.keys().next().value!);
    this.#cache.set(serverName, { value, expires: this.#now() + ttl });
    return value;
  }
}

/** `{ "server": "host[:port]" }` → the delegated address, or undefined for anything else. Other members are ignored. */
export function parseWellKnown(document: unknown): { host: string; port: number | undefined } | undefined {
  if (typeof document !== 'object' || document === null || Array.isArray(document)) return undefined;
  const server = (document as Record<string, unknown>).server;
  if (!Object.hasOwn(document, 'server')) return undefined;
  const parsed = parseServerName(server);
  return parsed && { host: parsed.host, port: parsed.port };
}

function staticEntry(serverName: string, target: unknown): ResolvedServer {
  const name = parseServerName(serverName);
  if (!name) throw new TypeError(`staticServers: ${JSON.stringify(serverName)} is not a server name`);
  const to = parseServerName(target);
  if (!to) throw new TypeError(`staticServers[${JSON.stringify(serverName)}]: expected host[:port]`);
  const tlsServername = to.ipVersion === 0 ? to.host : name.host;
  return { serverName, host: to.host, port: to.port ?? DEFAULT_FEDERATION_PORT, tlsServername, source: 'static' };
}

function positive(value: number, name: string): number {
  if (!Number.isInteger(value) || value <= 0) throw new TypeError(`${name}: expected a positive integer`);
  return value;
}
