import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { buildKeyDocument, type KeyDocumentPersistence, KeyStore, publicKeyFromB64u } from '@parley/federation/keys';
import { fingerprintOfPem, loadOrCreateTlsCertificate } from '@parley/federation/tls';
import {
  AddressPolicy,
  addressBucket,
  FederationClient,
  FederationError,
  type FederationRequest,
  type FederationResponse,
  isFederationError,
} from '@parley/federation/transport';
import type { ServerKeyDocument } from '@parley/schemas';
import { Counter, Gauge, type Metric } from 'prom-client';
import type { Config } from '../config.js';
import type { Logger } from '../logger.js';
import type { Clock } from '../services/clock.js';
import { MemoryRateLimiter } from '../services/rate-limit.js';
import type { SigningIdentity } from '../services/room-log.js';

// A key document holds at most 16 keys and 8 fingerprints (a few KiB): a bigger or slower answer
// is not one, and must not hold one of the few key-fetch slots for the transport's 60 s.
const KEY_FETCH_MAX_BYTES = 64 * 1024;
const KEY_FETCH_TIMEOUT_MS = 10_000;

export interface FederationContext {
  config: Config['federation'];
  serverName: string;
  clock: Clock;
  /** Key store metrics, registered by the server on its registry. */
  metrics: Metric[];
  tls: { certPem: string; keyPem: string; fingerprint: string };
  keyStore: KeyStore;
  client: PolicedFederationClient;
  /** Our own key document, re-signed before it expires. */
  keyDocument(): ServerKeyDocument;
  /** Why federation with a server is refused (an admin's domain block), or undefined. */
  refuse: (server: string) => string | undefined;
  /**
   * What our key document adds while it holds (docs/protocol.md, "Anchor relays"): the relay we
   * are reached through, the relay capability we offer. A change re-signs the document.
   */
  keyDocumentExtras: () => Pick<ServerKeyDocument, 'relay' | 'capabilities'>;
  /** Notes the relay an inbound request says its origin is reached through (`Parley-Relay`), see homeserver/src/relay. */
  relayHint?: (origin: string, relay: string) => void;
  close(): Promise<void>;
}

/** The outbound client behind the admin's domain policy: a blocked server is never dialled. */
class PolicedFederationClient extends FederationClient {
  refuse: (server: string) => string | undefined = () => undefined;
  /** Sends a request through a relay when its destination is reached through one (homeserver/src/relay); undefined: direct. */
  route?: (request: FederationRequest) => Promise<FederationResponse | undefined>;

  override async request(request: FederationRequest): Promise<FederationResponse> {
    const why = this.refuse(request.destination);
    if (why) throw new FederationError('ssrf', request.destination, `refused: ${why}`);
    const routed = await this.route?.(request);
    return routed ?? super.request(request);
  }

  /** request() without relay routing: how a relayed request reaches its relay. */
  async requestDirect(request: FederationRequest): Promise<FederationResponse> {
    const why = this.refuse(request.destination);
    if (why) throw new FederationError('ssrf', request.destination, `refused: ${why}`);
    return super.request(request);
  }
}

export type { PolicedFederationClient };

/**
 * Everything the homeserver needs to talk to other servers: its TLS certificate (configured,
 * or self-signed at first start and published by fingerprint), its key document, the key
 * store for other servers' keys, and the outbound client (SSRF guard, pinning).
 */
export async function createFederation(
  config: Config,
  identity: SigningIdentity,
  clock: Clock,
  log: Logger,
  refuse: (server: string) => string | undefined = () => undefined,
  /** Where verified key documents of other servers are kept across restarts (L5). */
  persistence?: KeyDocumentPersistence,
): Promise<FederationContext> {
  const fed = config.federation;
  let tls: { certPem: string; keyPem: string; fingerprint: string };
  if (fed.tls_cert_file && fed.tls_key_file) {
    const certPem = await readFile(fed.tls_cert_file, 'utf8');
    tls = { certPem, keyPem: await readFile(fed.tls_key_file, 'utf8'), fingerprint: fingerprintOfPem(certPem) };
  } else {
    tls = await loadOrCreateTlsCertificate(path.join(config.data_dir, 'tls'), config.server_name, {
      onNotice: (message: string) => log.info({ component: 'tls' }, message),
    });
  }

  let current: { doc: ServerKeyDocument; renewAt: number; extras: string } | null = null;
  let keyDocumentExtras: () => Pick<ServerKeyDocument, 'relay' | 'capabilities'> = () => ({});
  const keyDocument = (): ServerKeyDocument => {
    const now = clock.now();
    const extras = keyDocumentExtras();
    const extrasKey = JSON.stringify(extras);
    if (!current || now >= current.renewAt || current.extras !== extrasKey) {
      const doc = buildKeyDocument({
        serverName: config.server_name,
        current: identity,
        tlsFingerprints: [tls.fingerprint],
        validForMs: fed.key_validity_ms,
        now,
        relay: extras.relay,
        capabilities: extras.capabilities,
      });
      current = { doc, renewAt: now + fed.key_validity_ms / 2, extras: extrasKey };
    }
    return current.doc;
  };

  // eslint-style forward reference: the client asks the store for pins, the store fetches through the client.
  let keyStore: KeyStore;
  const client = new PolicedFederationClient({
    serverName: config.server_name,
    signingKey: identity,
    policy: new AddressPolicy({ allow: fed.allow_private }),
    // `name: relay:<relay>` entries say a server is reached through a relay (homeserver/src/relay).
    staticServers: Object.fromEntries(Object.entries(fed.static_servers).filter(([, to]) => !to.startsWith('relay:'))),
    now: () => clock.now(),
    pinsFor: async (server) => {
      await keyStore.prefetch(server);
      return keyStore.tlsPins(server);
    },
    log: log.child({ component: 'federation-client' }),
  });

  const keyEvents = new Counter({
    name: 'parley_federation_key_events_total',
    help: 'Key store outcomes: accepted, refused, failed, conflict (another key under a known key ID), unconfirmed (no notary vouched for a new key), limited (a fetch a remote caller would cause, not started)',
    labelNames: ['type'],
    registers: [],
  });
  const keyFetches = new Gauge({
    name: 'parley_federation_key_fetches',
    help: 'Key fetches running and waiting for a slot (federation.remote_key_fetch.max_concurrent)',
    labelNames: ['state'],
    registers: [],
    collect() {
      const stats = keyStore.fetchStats();
      this.set({ state: 'running' }, stats.running);
      this.set({ state: 'queued' }, stats.queued);
    },
  });
  // Fetches that unauthenticated callers cause (a new origin in an Authorization header, the
  // names of a notary query) are charged to the caller's IP (an IPv6 caller's /64) and to the
  // server as a whole.
  const limits = fed.remote_key_fetch;
  const buckets = new MemoryRateLimiter(clock, 10_000);
  const admitFetch = async (_server: string, requester: string): Promise<boolean> =>
    (await buckets.take(`ip:${addressBucket(requester)}`, limits.per_ip)).allowed && (await buckets.take('global', limits.global)).allowed;

  // Without notaries, trust on first use: once a server's keys are known, a key ID new to us
  // is accepted only over a certificate already pinned for it. A man in the middle of a later
  // fetch must otherwise only bring his own certificate and a "rotated" key; a CA certificate's
  // renewal keeps working (same keys), a server that lost its data dir is refused until the
  // operator here forgets it (rows in server_key_documents, then a restart).
  const checkContinuity = (server: string, body: unknown, presented: string | undefined) => {
    const known = keyStore.knownKeyIds(server);
    const pins = keyStore.tlsPins(server) ?? [];
    if (known.length === 0 || pins.length === 0 || presented === undefined || pins.includes(presented)) return;
    const offered = Object.keys((body as { verify_keys?: object })?.verify_keys ?? {}).map((name) => name.replace(/^ed25519:/, ''));
    const fresh = offered.filter((id) => !known.includes(id));
    if (fresh.length > 0) {
      throw new Error(
        `${server} offers a new key (${fresh.map((id) => `ed25519:${id}`).join(', ')}) over a certificate not pinned for it; refused: no notary is configured to confirm it`,
      );
    }
  };

  keyStore = new KeyStore({
    now: () => clock.now(),
    admitFetch,
    persistence,
    requesterFailureTtlMs: limits.failure_cache_ms,
    maxConcurrentFetches: limits.max_concurrent,
    notaries: fed.trusted_notaries.map((n) => ({
      name: n.name,
      verifyKeys: Object.fromEntries(Object.entries(n.verify_keys).map(([id, key]) => [id, publicKeyFromB64u(key)])),
    })),
    // First contact with a self-signed server cannot be pinned yet: accept the certificate it
    // presents, but only with a key document that lists that very certificate.
    fetchDirect: async (server) => {
      const res = await client.request({
        destination: server,
        method: 'GET',
        path: '/federation/v1/keys',
        signed: false,
        tls: 'any',
        maxBytes: KEY_FETCH_MAX_BYTES,
        timeoutMs: KEY_FETCH_TIMEOUT_MS,
      });
      const fps = ((res.body as { tls_fingerprints?: Array<{ sha256?: unknown }> })?.tls_fingerprints ?? []).map((f) => f.sha256);
      if (res.tlsFingerprint && !fps.includes(res.tlsFingerprint)) {
        throw new Error(`${server} served a key document that does not list the certificate it presented`);
      }
      if (fed.trusted_notaries.length === 0) checkContinuity(server, res.body, res.tlsFingerprint);
      return res.body;
    },
    queryNotary: async (notary, server, criteria) => {
      const wanted = criteria?.minimumValidUntilTs === undefined ? {} : { minimum_valid_until_ts: criteria.minimumValidUntilTs };
      const res = await client.request({
        destination: notary,
        method: 'POST',
        path: '/federation/v1/keys/query',
        timeoutMs: KEY_FETCH_TIMEOUT_MS,
        body: { server_keys: { [server]: { '*': wanted } } },
      });
      return ((res.body as { server_keys?: unknown[] })?.server_keys ?? []) as unknown[];
    },
    onEvent: (event) => {
      keyEvents.inc({ type: event.type });
      const level = event.type === 'conflict' || event.type === 'unconfirmed' ? 'warn' : event.type === 'limited' ? 'debug' : 'info';
      log[level]({ component: 'keys', ...event }, 'key store');
    },
  });
  client.refuse = refuse;

  return {
    config: fed,
    serverName: config.server_name,
    clock,
    metrics: [keyEvents, keyFetches],
    tls,
    keyStore,
    client,
    keyDocument,
    refuse,
    get keyDocumentExtras() {
      return keyDocumentExtras;
    },
    set keyDocumentExtras(extras) {
      keyDocumentExtras = extras;
    },
    close: () => client.close(),
  };
}

export { isFederationError };
