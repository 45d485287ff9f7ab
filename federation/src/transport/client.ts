import type { Dispatcher, Pool } from 'undici';
import { canonicalJson } from '../canonical/canonical-json.js';
import type { SigningKey } from '../keys/signing-key.js';
import { type DialTarget, guardedConnector, type HostLookup, systemLookup, type TlsTrust } from './connector.js';
import { type ResolvedServer, ServerDiscovery, WELL_KNOWN_PATH } from './discovery.js';
import { FederationError } from './errors.js';
import { SILENT_LOG, type TransportLog } from './log.js';
import { signRequest } from './request-auth.js';
import { classifyError, parseJsonBody, readCappedBody } from './response.js';
import { formatHostPort, parseServerName } from './server-name.js';
import { AddressPolicy } from './ssrf.js';

type Undici = typeof import('undici');
let undici: Promise<Undici> | null = null;
/** undici (≈ 700 KB of code) loads with the first outgoing request, not with every process. */
function loadUndici(): Promise<Undici> {
  // Through a bundler, importing CommonJS may answer its exports only as `default`.
  undici ??= import('undici').then((m) => ((m as Partial<Undici>).Pool ? m : (m as unknown as { default: Undici }).default));
  return undici;
}

/**
 * Outbound federation over HTTPS (docs/protocol.md): one undici Pool per destination, every socket
 * opened by the guarded connector (SSRF check on the resolved IP, pinning or WebPKI), every
 * size and time capped, redirects never followed (a 3xx is an 'http' failure: following one
 * would need every hop re-checked, and no federation endpoint redirects). Every failure is a
 * FederationError with a kind the delivery engine can act on.
 */

export interface TransportLimits {
  /** DNS + TCP + TLS handshake; default 5 s. */
  connectTimeoutMs: number;
  /** Until the response headers arrive; default 30 s. */
  headersTimeoutMs: number;
  /** Longest silence while the body streams; default 30 s. */
  bodyTimeoutMs: number;
  /** The whole request, whatever the above; default 60 s (a slow drip stays under bodyTimeout). */
  requestTimeoutMs: number;
  /** Response body cap; default 1 MiB, raised per request for media. */
  maxResponseBytes: number;
  /** All response headers together; default 16 KiB, as Node's own HTTP parser. */
  maxHeaderBytes: number;
}

export const DEFAULT_LIMITS: Readonly<TransportLimits> = Object.freeze({
  connectTimeoutMs: 5_000,
  headersTimeoutMs: 30_000,
  bodyTimeoutMs: 30_000,
  requestTimeoutMs: 60_000,
  maxResponseBytes: 1024 * 1024,
  maxHeaderBytes: 16 * 1024,
});

const WELL_KNOWN_MAX_BYTES = 64 * 1024;
const WELL_KNOWN_TIMEOUT_MS = 10_000;
const MAX_PATH_LENGTH = 8192;

export type PinsFor = (serverName: string) => readonly string[] | undefined | Promise<readonly string[] | undefined>;

export interface FederationClientOptions {
  /** Our server name: the `origin` of every signed request. */
  serverName: string;
  signingKey: SigningKey;
  /** Which resolved addresses may be dialled; default: public unicast only. */
  policy?: AddressPolicy;
  /** Pinned certificate fingerprints of a server (from its key document); undefined or empty means WebPKI. */
  pinsFor?: PinsFor;
  /** Extra trust anchors (PEM) for WebPKI, added to the system roots: private CAs, tests. */
  ca?: string | readonly string[];
  /** Discovery's static map: `{ "b.test": "127.0.0.1:8482" }`. */
  staticServers?: Readonly<Record<string, string>>;
  /** Where a name's delegation lives; default `https://<name>/.well-known/parley/server`. */
  wellKnownUrl?: (serverName: string) => string;
  /** Discovery cache TTLs (default 1 h, and 5 min after a failed lookup). */
  discoveryTtlMs?: number;
  discoveryFailureTtlMs?: number;
  /** Name resolution; default the system resolver. Tests map names to loopback with it. */
  lookup?: HostLookup;
  limits?: Partial<TransportLimits>;
  /** Sockets per destination; default 4. */
  connectionsPerDestination?: number;
  /** Pools kept at once; the least recently used is closed beyond it. Default 1,000. */
  maxPools?: number;
  log?: TransportLog;
  /** The clock that dates signed requests (ms since the epoch); default Date.now. */
  now?: () => number;
}

export interface FederationRequest {
  destination: string;
  method: string;
  /** Path and query as sent and signed: `/federation/v1/send/t1`. */
  path: string;
  /** A JSON value, sent as canonical JSON. */
  body?: unknown;
  /** Sign with the server key (default true); only key fetches go unsigned. */
  signed?: boolean;
  /** Body cap for this request (media); default limits.maxResponseBytes. */
  maxBytes?: number;
  /** Whole-request deadline for this request; default limits.requestTimeoutMs. */
  timeoutMs?: number;
  /** Answer with the body's bytes (a Buffer: media) instead of parsed JSON; errors are still parsed. */
  raw?: boolean;
  /**
   * 'verify' (default): pinned fingerprints, else WebPKI. 'any' accepts any certificate and
   * returns its fingerprint: only for documents that carry their own proof, i.e. a server's
   * self-signed key document, whose fingerprint list the caller then checks against it.
   */
  tls?: TlsTrust;
}

export interface FederationResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: unknown;
  /** The peer certificate's fingerprint; only set for `tls: 'any'`. */
  tlsFingerprint?: string;
}

export interface FetchJsonOptions {
  maxBytes?: number;
  timeoutMs?: number;
  tls?: TlsTrust;
  /** Whose pins apply; default the URL's host (with its port, if any). */
  serverName?: string;
}

export class FederationClient {
  readonly serverName: string;
  readonly discovery: ServerDiscovery;
  readonly #key: SigningKey;
  readonly #policy: AddressPolicy;
  readonly #pinsFor: PinsFor;
  readonly #ca: readonly string[] | undefined;
  readonly #lookup: HostLookup;
  readonly #limits: TransportLimits;
  readonly #connections: number;
  readonly #maxPools: number;
  readonly #log: TransportLog;
  readonly #now: () => number;
  readonly #pools = new Map<string, { key: string; pool: Pool }>();
  #closed = false;
  /** Headers added to every request (e.g. `parley-relay`, naming the relay a server without an inbound port is reached through). */
  extraHeaders?: () => Record<string, string> | undefined;

  constructor(options: FederationClientOptions) {
    if (typeof options !== 'object' || options === null) throw new TypeError('options: expected an object');
    if (parseServerName(options.serverName) === undefined) throw new TypeError('options.serverName: expected a server name');
    if (typeof options.signingKey?.keyId !== 'string') throw new TypeError('options.signingKey: expected a SigningKey');
    this.serverName = options.serverName;
    this.#key = options.signingKey;
    this.#policy = options.policy ?? new AddressPolicy();
    if (!(this.#policy instanceof AddressPolicy)) throw new TypeError('options.policy: expected an AddressPolicy');
    this.#pinsFor = options.pinsFor ?? (() => undefined);
    this.#ca = options.ca === undefined ? undefined : typeof options.ca === 'string' ? [options.ca] : [...options.ca];
    this.#lookup = options.lookup ?? systemLookup;
    this.#limits = { ...DEFAULT_LIMITS, ...options.limits };
    for (const [name, value] of Object.entries(this.#limits)) checkPositive(value, `options.limits.${name}`);
    this.#connections = checkPositive(options.connectionsPerDestination ?? 4, 'options.connectionsPerDestination');
    this.#maxPools = checkPositive(options.maxPools ?? 1000, 'options.maxPools');
    this.#log = options.log ?? SILENT_LOG;
    if (options.now !== undefined && typeof options.now !== 'function') throw new TypeError('options.now: expected a function');
    this.#now = options.now ?? Date.now;
    const wellKnownUrl = options.wellKnownUrl ?? ((name: string) => `https://${name}${WELL_KNOWN_PATH}`);
    this.discovery = new ServerDiscovery({
      staticServers: options.staticServers,
      fetchWellKnown: async (name) =>
        (await this.fetchJson(wellKnownUrl(name), { serverName: name, maxBytes: WELL_KNOWN_MAX_BYTES, timeoutMs: WELL_KNOWN_TIMEOUT_MS }))
          .body,
      cacheTtlMs: options.discoveryTtlMs,
      failureTtlMs: options.discoveryFailureTtlMs,
      log: this.#log,
    });
  }

  /** Sends one request to a server and returns its parsed JSON answer; rejects with a FederationError for any failure, a 3xx–5xx included. */
  async request(request: FederationRequest): Promise<FederationResponse> {
    this.#assertOpen();
    const { method, path } = checkRequest(request);
    const target = await this.discovery.resolve(request.destination);
    const payload = request.body === undefined ? undefined : canonicalJson(request.body, 'body');
    const headers: Record<string, string> = { ...this.extraHeaders?.(), accept: request.raw ? '*/*' : 'application/json' };
    if (payload !== undefined) headers['content-type'] = 'application/json';
    if (request.signed ?? true) {
      headers.authorization = signRequest(
        { method, uri: path, origin: this.serverName, destination: request.destination, content: request.body, ts: this.#now() },
        this.#key,
      );
    }
    const dial: DialTarget = {
      destination: request.destination,
      host: target.host,
      port: target.port,
      tlsServername: target.tlsServername,
    };
    const exchange = { method, path, headers, body: payload, raw: request.raw === true };
    const limits = this.#requestLimits(request.maxBytes, request.timeoutMs);
    if (request.tls === 'any') return this.#oneShot(dial, request.destination, exchange, limits, 'any');
    return this.#exchange(this.#poolFor(target, await loadUndici()), request.destination, exchange, limits);
  }

  /**
   * Sends a request another server signed for `request.destination`, unchanged (its
   * Authorization header and body bytes): how a relay delivers what it holds (docs/protocol.md,
   * "Store-and-forward"). Same guard, pins and caps as request(); the header
   * `parley-relayed-by` names us.
   */
  async forwardSigned(request: {
    destination: string;
    method: string;
    path: string;
    authorization: string;
    contentType?: string;
    body?: Uint8Array;
    timeoutMs?: number;
    maxBytes?: number;
  }): Promise<FederationResponse> {
    this.#assertOpen();
    const { method, path } = checkRequest(request);
    const target = await this.discovery.resolve(request.destination);
    const headers: Record<string, string> = {
      accept: 'application/json',
      authorization: request.authorization,
      'parley-relayed-by': this.serverName,
    };
    const body = request.body === undefined || request.body.length === 0 ? undefined : Buffer.from(request.body).toString('utf8');
    if (body !== undefined) headers['content-type'] = request.contentType ?? 'application/json';
    const exchange = { method, path, headers, body };
    const pool = this.#poolFor(target, await loadUndici());
    return this.#exchange(pool, request.destination, exchange, this.#requestLimits(request.maxBytes, request.timeoutMs));
  }

  /** GET a JSON document over the same guard (well-known delegation, and the like). */
  async fetchJson(url: string, options: FetchJsonOptions = {}): Promise<FederationResponse> {
    this.#assertOpen();
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new TypeError('url: not a URL');
    }
    if (parsed.protocol !== 'https:' || parsed.username !== '' || parsed.password !== '') {
      throw new TypeError('url: expected https:// without credentials');
    }
    const host = parsed.hostname.replace(/^\[(.*)\]$/, '$1');
    const port = parsed.port === '' ? 443 : Number(parsed.port);
    const destination = options.serverName ?? parsed.host;
    const dial: DialTarget = { destination, host, port, tlsServername: host };
    const exchange = { method: 'GET', path: parsed.pathname + parsed.search, headers: { accept: 'application/json' }, body: undefined };
    return this.#oneShot(dial, destination, exchange, this.#requestLimits(options.maxBytes, options.timeoutMs), options.tls ?? 'verify');
  }

  /** Closes every pool; requests in flight finish first. */
  async close(): Promise<void> {
    this.#closed = true;
    const pools = [...this.#pools.values()];
    this.#pools.clear();
    await Promise.all(pools.map(({ pool }) => pool.close().catch(() => {})));
  }

  #assertOpen(): void {
    if (this.#closed) throw new Error('FederationClient is closed');
  }

  #requestLimits(maxBytes: number | undefined, timeoutMs: number | undefined): { maxBytes: number; timeoutMs: number } {
    return {
      maxBytes: checkPositive(maxBytes ?? this.#limits.maxResponseBytes, 'maxBytes'),
      timeoutMs: checkPositive(timeoutMs ?? this.#limits.requestTimeoutMs, 'timeoutMs'),
    };
  }

  #dispatcherOptions(dial: DialTarget, trust: TlsTrust, onPeerCertificate?: (fingerprint: string) => void) {
    return {
      connect: guardedConnector(dial, {
        policy: this.#policy,
        lookup: this.#lookup,
        pins: () => this.#pinsFor(dial.destination),
        trust,
        ca: this.#ca,
        timeoutMs: this.#limits.connectTimeoutMs,
        log: this.#log,
        onPeerCertificate,
      }),
      headersTimeout: this.#limits.headersTimeoutMs,
      bodyTimeout: this.#limits.bodyTimeoutMs,
      maxHeaderSize: this.#limits.maxHeaderBytes,
      keepAliveTimeout: 30_000,
      keepAliveMaxTimeout: 120_000,
    };
  }

  // A pool is keyed by where it dials: when discovery moves a server, its old pool is closed.
  #poolFor(target: ResolvedServer, { Pool }: Undici): Pool {
    const key = `${target.host}|${target.port}|${target.tlsServername}`;
    const existing = this.#pools.get(target.serverName);
    this.#pools.delete(target.serverName);
    if (existing?.key === key) {
      this.#pools.set(target.serverName, existing);
      return existing.pool;
    }
    if (existing) void existing.pool.close().catch(() => {});
    const dial = { destination: target.serverName, host: target.host, port: target.port, tlsServername: target.tlsServername };
    const pool = new Pool(`https://${formatHostPort(target.tlsServername, target.port)}`, {
      ...this.#dispatcherOptions(dial, 'verify'),
      connections: this.#connections,
    });
    this.#pools.set(target.serverName, { key, pool });
    while (this.#pools.size > this.#maxPools) {
      const [oldest, entry] = this.#pools.entries().next().value!;
      this.#pools.delete(oldest);
      void entry.pool.close().catch(() => {});
    }
    return pool;
  }

  // A single-use connection: for documents fetched rarely, and for tls 'any', whose accepted
  // certificate must be reported with the response and never shared with pinned traffic.
  async #oneShot(
    dial: DialTarget,
    destination: string,
    exchange: Exchange,
    limits: RequestLimits,
    trust: TlsTrust,
  ): Promise<FederationResponse> {
    let fingerprint: string | undefined;
    const { Client } = await loadUndici();
    const client = new Client(`https://${formatHostPort(dial.tlsServername, dial.port)}`, {
      ...this.#dispatcherOptions(dial, trust, (fp) => {
        fingerprint = fp;
      }),
      pipelining: 0,
    });
    try {
      const response = await this.#exchange(client, destination, exchange, limits);
      return trust === 'any' ? { ...response, tlsFingerprint: fingerprint } : response;
    } finally {
      client.destroy().catch(() => {});
    }
  }

  async #exchange(dispatcher: Dispatcher, destination: string, exchange: Exchange, limits: RequestLimits): Promise<FederationResponse> {
    const deadline = new AbortController();
    const timer = setTimeout(() => deadline.abort(), limits.timeoutMs);
    try {
      const response = await dispatcher.request({ ...exchange, signal: deadline.signal });
      const bytes = await readCappedBody(response, limits.maxBytes, destination);
      const status = response.statusCode;
      if (status < 200 || status > 299) {
        let body: unknown;
        try {
          body = parseJsonBody(bytes, destination, status);
        } catch {
          body = undefined;
        }
        const errcode = typeof (body as { errcode?: unknown })?.errcode === 'string' ? ` ${(body as { errcode: string }).errcode}` : '';
        throw new FederationError('http', destination, `${exchange.method} ${exchange.path} answered ${status}${errcode}`, {
          status,
          body,
        });
      }
      return { status, headers: response.headers, body: exchange.raw ? bytes : parseJsonBody(bytes, destination, status) };
    } catch (err) {
      throw classifyError(err, destination, deadline.signal.aborted, limits.timeoutMs);
    } finally {
      clearTimeout(timer);
    }
  }
}

interface Exchange {
  method: string;
  path: string;
  headers: Record<string, string>;
  body: string | undefined;
  raw?: boolean;
}

interface RequestLimits {
  maxBytes: number;
  timeoutMs: number;
}

function checkRequest(request: FederationRequest): { method: string; path: string } {
  if (typeof request !== 'object' || request === null) throw new TypeError('request: expected an object');
  const { method, path } = request;
  if (typeof method !== 'string' || !/^[A-Z]{1,16}$/.test(method))
    throw new TypeError('request.method: expected an upper-case HTTP method');
  if (typeof path !== 'string' || path.length > MAX_PATH_LENGTH || !/^\/[\x21-\x7e]*$/.test(path)) {
    throw new TypeError('request.path: expected /path?query in printable ASCII');
  }
  if (request.tls !== undefined && request.tls !== 'verify' && request.tls !== 'any')
    throw new TypeError("request.tls: expected 'verify' or 'any'");
  return { method, path };
}

function checkPositive(value: number, name: string): number {
  if (!Number.isSafeInteger(value) || value <= 0) throw new TypeError(`${name}: expected a positive integer`);
  return value;
}
