import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { DEFAULT_RELAY_LIMITS } from '@parley/federation/relay';
import { check, isServerName, RegistrationMode } from '@parley/schemas';
import { type Static, Type } from '@sinclair/typebox';
import { parse as parseYaml } from 'yaml';
import { DEFAULT_RELAY_FALLBACK, RelayFallbackKeys } from './relay/settings.js';

const Bucket = Type.Object(
  {
    burst: Type.Integer({ minimum: 1, description: 'requests allowed at once' }),
    per_minute: Type.Number({ exclusiveMinimum: 0, description: 'sustained refill rate' }),
  },
  { additionalProperties: false },
);

/**
 * The whole configuration. Every key is documented in homeserver/README.md; defaults are
 * what a single-host operator wants. Durations are milliseconds, sizes bytes.
 */
export const ConfigSchema = Type.Object(
  {
    server_name: Type.String({ minLength: 1 }),
    data_dir: Type.String({ minLength: 1 }),
    http: Type.Object(
      {
        host: Type.String(),
        port: Type.Integer({ minimum: 0, maximum: 65535 }),
        trust_proxy: Type.Boolean(),
        // How many proxies of yours append to X-Forwarded-For: the client address is the one the
        // outermost of them appended, never the leftmost entry, which the client writes itself.
        trusted_proxy_hops: Type.Integer({ minimum: 1, maximum: 10 }),
        max_json_body_bytes: Type.Integer({ minimum: 1024 }),
        request_timeout_ms: Type.Integer({ minimum: 1000 }),
        shutdown_grace_ms: Type.Integer({ minimum: 0 }),
      },
      { additionalProperties: false },
    ),
    database: Type.Object(
      {
        url: Type.Union([Type.String(), Type.Null()]),
        pool_max: Type.Integer({ minimum: 1 }),
        embedded_port: Type.Union([Type.Integer({ minimum: 1, maximum: 65535 }), Type.Null()]),
      },
      { additionalProperties: false },
    ),
    redis: Type.Object(
      {
        url: Type.Union([Type.String(), Type.Null()]),
        key_prefix: Type.String(),
        /** `url` is one node of a Redis Cluster (the others are discovered). */
        cluster: Type.Boolean(),
      },
      { additionalProperties: false },
    ),
    registration: Type.Object(
      {
        mode: RegistrationMode,
      },
      { additionalProperties: false },
    ),
    auth: Type.Object(
      {
        access_token_ttl_ms: Type.Integer({ minimum: 10_000 }),
        refresh_token_ttl_ms: Type.Integer({ minimum: 60_000 }),
        argon2: Type.Object(
          {
            memory_kib: Type.Integer({ minimum: 8192 }),
            iterations: Type.Integer({ minimum: 1 }),
            parallelism: Type.Integer({ minimum: 1 }),
          },
          { additionalProperties: false },
        ),
      },
      { additionalProperties: false },
    ),
    rate_limits: Type.Object(
      {
        enabled: Type.Boolean(),
        register_per_ip: Bucket,
        login_per_ip: Bucket,
        login_per_account: Bucket,
        refresh_per_ip: Bucket,
        // Each fetch of another server's media that is not cached yet (found there or not).
        remote_media_per_user: Bucket,
        // Directory and alias queries a user sends to other servers: each dials out.
        remote_query_per_user: Bucket,
      },
      { additionalProperties: false },
    ),
    media: Type.Object(
      {
        upload_timeout_ms: Type.Integer({ minimum: 10_000, description: 'time allowed to receive one upload body' }),
        max_upload_bytes: Type.Integer({ minimum: 1, description: 'largest single upload' }),
        user_quota_bytes: Type.Integer({ minimum: 0, description: 'total stored per account' }),
        remote_cache_max_bytes: Type.Integer({
          minimum: 1,
          description: "other servers' media cached here, all together; the least recently used goes first",
        }),
      },
      { additionalProperties: false },
    ),
    stream: Type.Object(
      {
        heartbeat_ms: Type.Integer({ minimum: 1000, description: 'client heartbeat interval; silent for twice this = dead' }),
        identify_timeout_ms: Type.Integer({ minimum: 1000 }),
        max_buffered_bytes: Type.Integer({ minimum: 16384, description: 'unsent data per socket before it is told to resume' }),
        long_poll_max_ms: Type.Integer({ minimum: 1000 }),
        retention_ms: Type.Integer({
          minimum: 60_000,
          description: 'stream notes older than this are deleted; a client resuming from before them resyncs',
        }),
      },
      { additionalProperties: false },
    ),
    presence: Type.Object({ enabled: Type.Boolean() }, { additionalProperties: false }),
    federation: Type.Object(
      {
        enabled: Type.Boolean(),
        listen: Type.Boolean({
          description: 'open the inbound federation port; off behind NAT, where relay.use names the relay that carries inbound traffic',
        }),
        host: Type.String(),
        port: Type.Integer({ minimum: 0, maximum: 65535 }),
        tls_cert_file: Type.Union([Type.String(), Type.Null()]),
        tls_key_file: Type.Union([Type.String(), Type.Null()]),
        static_servers: Type.Record(Type.String(), Type.String(), { description: 'server name → host:port, before well-known' }),
        allow_private: Type.Array(Type.String(), { description: 'CIDRs outbound federation may dial although not public' }),
        trusted_notaries: Type.Array(
          Type.Object({ name: Type.String(), verify_keys: Type.Record(Type.String(), Type.String()) }, { additionalProperties: false }),
        ),
        outbox_ttl_ms: Type.Integer({ minimum: 60_000 }),
        key_validity_ms: Type.Integer({ minimum: 60_000, maximum: 7 * 86_400_000 }),
        delivery_concurrency: Type.Integer({ minimum: 1 }),
        max_transaction_bytes: Type.Integer({ minimum: 65_536 }),
        query_timeout_ms: Type.Integer({ minimum: 100, description: 'deadline for alias and directory queries to other servers' }),
        join_full_chain_max: Type.Integer({
          minimum: 0,
          maximum: 20_000,
          description: 'rooms up to this many entries are joined with their whole chain; larger ones from a state snapshot',
        }),
        join_recent_entries: Type.Integer({ minimum: 1, maximum: 1000, description: 'recent entries sent with a state snapshot' }),
        request_time_window_ms: Type.Integer({
          minimum: 10_000,
          maximum: 3_600_000,
          description: 'a signed request dated further than this from our clock, either way, is refused (replay)',
        }),
        remote_key_fetch: Type.Object(
          {
            per_ip: Bucket,
            global: Bucket,
            max_concurrent: Type.Integer({ minimum: 1, maximum: 1000 }),
            failure_cache_ms: Type.Integer({
              minimum: 0,
              description: 'a server whose keys could not be fetched is not asked again for this long',
            }),
          },
          { additionalProperties: false, description: 'key fetches that unauthenticated callers cause (new origins, notary queries)' },
        ),
      },
      { additionalProperties: false },
    ),
    bootstrap: Type.Object(
      {
        announce: Type.Boolean({
          description: 'publish a signed descriptor of this server in bootstrap lists (off: read lists, never appear in one)',
        }),
        seeds: Type.Array(Type.String(), { maxItems: 64, description: 'server names asked for lists at start, always kept' }),
        fallback_list: Type.Union([Type.String(), Type.Null()], {
          description: "file with a release's signed fallback list, used when nothing else answers",
        }),
        endpoints: Type.Array(
          Type.Object({ host: Type.String(), port: Type.Integer({ minimum: 1, maximum: 65535 }) }, { additionalProperties: false }),
          {
            maxItems: 4,
            description: 'federation addresses published in our descriptor; empty = the server name on federation.port',
          },
        ),
        capabilities: Type.Array(Type.Union([Type.Literal('relay'), Type.Literal('mailbox'), Type.Literal('mirror')]), { maxItems: 3 }),
        descriptor_validity_ms: Type.Integer({ minimum: 60_000, maximum: 7 * 86_400_000 }),
        pull_interval_ms: Type.Integer({ minimum: 1000, description: 'how often lists are pulled from a few known servers' }),
        feeler_interval_ms: Type.Integer({ minimum: 1000, description: 'how often one unproven entry is probed' }),
        fanout: Type.Integer({ minimum: 1, maximum: 16 }),
        hop_limit: Type.Integer({ minimum: 0, maximum: 4 }),
        cache_max_age_ms: Type.Integer({ minimum: 60_000 }),
        announce_per_peer: Bucket,
      },
      { additionalProperties: false },
    ),
    mailbox: Type.Object(
      {
        enabled: Type.Boolean({
          description: 'offer mailbox queues for E2E clients (docs/protocol.md): senders need a send ID, receivers the queue key',
        }),
        block_bytes: Type.Integer({ minimum: 1024, maximum: 1024 * 1024, description: 'every stored blob is padded to exactly this size' }),
        queue_quota: Type.Integer({ minimum: 1, maximum: 100_000, description: 'blobs one queue holds until the receiver acknowledges' }),
        server_quota_bytes: Type.Integer({ minimum: 1024, description: 'blocks held on the whole server, in bytes' }),
        ttl_ms: Type.Integer({ minimum: 60_000, description: 'an unacknowledged blob is dropped after this long' }),
        create_per_ip: Bucket,
        send_per_ip: Bucket,
      },
      { additionalProperties: false },
    ),
    relay: Type.Object(
      {
        enabled: Type.Boolean({ description: 'serve as an anchor relay: servers without an inbound port reserve here (docs/protocol.md)' }),
        use: Type.Union([Type.String(), Type.Null()], {
          description: 'server name of the relay this server reserves on and is reached through (needed when federation.listen is off)',
        }),
        max_reservations: Type.Integer({ minimum: 1, maximum: 1_000_000 }),
        reservations_per_ip: Type.Integer({ minimum: 1, maximum: 10_000 }),
        reservations_per_network: Type.Integer({ minimum: 1, maximum: 100_000, description: 'per IPv4 /16 or IPv6 /32' }),
        origin_requests_per_second: Type.Integer({ minimum: 1, maximum: 100_000 }),
        reservation_bytes_per_second: Type.Integer({ minimum: 1024 }),
        reservation_requests_per_second: Type.Integer({ minimum: 1, maximum: 100_000 }),
        max_body_bytes: Type.Integer({ minimum: 65_536, maximum: 256 * 1024 * 1024 }),
        max_in_flight: Type.Integer({ minimum: 1, maximum: 10_000 }),
        reservation_ttl_ms: Type.Integer({ minimum: 60_000, maximum: 86_400_000 }),
        request_timeout_ms: Type.Integer({ minimum: 1000, maximum: 300_000 }),
        ...RelayFallbackKeys,
      },
      { additionalProperties: false },
    ),
    updates: Type.Object(
      {
        mirror: Type.Boolean({ description: 'fetch, verify and serve the release repository under /updates/' }),
        upstreams: Type.Array(Type.String({ pattern: '^https?://' }), {
          maxItems: 16,
          description: 'base URLs of the repository (a release site or other mirrors), tried in order',
        }),
        trusted_root: Type.Union([Type.String(), Type.Null()], {
          description: 'the root.json this server trusts first (shipped with the release); set, the server checks for releases',
        }),
        check_interval_ms: Type.Integer({ minimum: 60_000 }),
        max_metadata_bytes: Type.Integer({ minimum: 4096 }),
        max_target_bytes: Type.Integer({ minimum: 1024 }),
        max_targets: Type.Integer({ minimum: 1, maximum: 1024 }),
      },
      { additionalProperties: false },
    ),
    logging: Type.Object(
      {
        level: Type.Union(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l))),
      },
      { additionalProperties: false },
    ),
  },
  { additionalProperties: false },
);
export type Config = Static<typeof ConfigSchema>;

export type DeepPartial<T> = { [K in keyof T]?: T[K] extends object ? DeepPartial<T[K]> : T[K] };

export function defaultConfig(): Config {
  return {
    server_name: 'localhost:8008',
    data_dir: path.resolve('data'),
    http: {
      host: '0.0.0.0',
      port: 8008,
      trust_proxy: false,
      trusted_proxy_hops: 1,
      max_json_body_bytes: 64 * 1024,
      request_timeout_ms: 30_000,
      shutdown_grace_ms: 10_000,
    },
    database: { url: null, pool_max: 10, embedded_port: null },
    redis: { url: null, key_prefix: 'parley:', cluster: false },
    registration: { mode: 'open' },
    auth: {
      access_token_ttl_ms: 15 * 60_000,
      // Sliding: each refresh issues a new token with a fresh 30 days; the token dies with its
      // device. 90 days was a long life for a bearer secret kept in the browser's localStorage.
      refresh_token_ttl_ms: 30 * 24 * 3600_000,
      // OWASP's Argon2id baseline: 19 MiB, 2 passes, 1 lane.
      argon2: { memory_kib: 19_456, iterations: 2, parallelism: 1 },
    },
    rate_limits: {
      enabled: true,
      register_per_ip: { burst: 5, per_minute: 2 },
      login_per_ip: { burst: 20, per_minute: 10 },
      login_per_account: { burst: 5, per_minute: 3 },
      refresh_per_ip: { burst: 60, per_minute: 60 },
      remote_media_per_user: { burst: 60, per_minute: 30 },
      remote_query_per_user: { burst: 30, per_minute: 20 },
    },
    media: {
      max_upload_bytes: 50 * 1024 * 1024,
      user_quota_bytes: 1024 * 1024 * 1024,
      upload_timeout_ms: 600_000,
      remote_cache_max_bytes: 10 * 1024 * 1024 * 1024,
    },
    stream: {
      heartbeat_ms: 30_000,
      identify_timeout_ms: 10_000,
      max_buffered_bytes: 1024 * 1024,
      long_poll_max_ms: 30_000,
      retention_ms: 7 * 86_400_000,
    },
    presence: { enabled: true },
    federation: {
      enabled: true,
      listen: true,
      host: '0.0.0.0',
      port: 8448,
      tls_cert_file: null,
      tls_key_file: null,
      static_servers: {},
      allow_private: [],
      trusted_notaries: [],
      outbox_ttl_ms: 7 * 86_400_000,
      key_validity_ms: 86_400_000,
      delivery_concurrency: 8,
      max_transaction_bytes: 8 * 1024 * 1024,
      query_timeout_ms: 10_000,
      join_full_chain_max: 1000,
      join_recent_entries: 50,
      request_time_window_ms: 300_000,
      remote_key_fetch: {
        per_ip: { burst: 20, per_minute: 10 },
        global: { burst: 200, per_minute: 120 },
        max_concurrent: 16,
        failure_cache_ms: 300_000,
      },
    },
    bootstrap: {
      announce: false,
      seeds: [],
      fallback_list: null,
      endpoints: [],
      capabilities: [],
      descriptor_validity_ms: 86_400_000,
      pull_interval_ms: 1_800_000,
      feeler_interval_ms: 120_000,
      fanout: 3,
      hop_limit: 3,
      cache_max_age_ms: 86_400_000,
      announce_per_peer: { burst: 256, per_minute: 30 },
    },
    mailbox: {
      enabled: true,
      block_bytes: 16 * 1024,
      queue_quota: 128,
      server_quota_bytes: 256 * 1024 * 1024,
      ttl_ms: 21 * 86_400_000,
      create_per_ip: { burst: 10, per_minute: 2 },
      send_per_ip: { burst: 60, per_minute: 60 },
    },
    relay: { enabled: false, use: null, ...DEFAULT_RELAY_LIMITS, ...DEFAULT_RELAY_FALLBACK },
    updates: {
      mirror: false,
      upstreams: [],
      trusted_root: null,
      check_interval_ms: 3_600_000,
      max_metadata_bytes: 512 * 1024,
      max_target_bytes: 200 * 1024 * 1024,
      max_targets: 64,
    },
    logging: { level: 'info' },
  };
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

export function mergeConfig<T>(base: T, override: unknown): T {
  if (!isPlainObject(override)) return base;
  const out: Record<string, unknown> = { ...(base as Record<string, unknown>) };
  for (const [key, value] of Object.entries(override)) {
    if (value === undefined) continue;
    const current = out[key];
    out[key] = isPlainObject(current) && isPlainObject(value) ? mergeConfig(current, value) : value;
  }
  return out as T;
}

function envInt(env: NodeJS.ProcessEnv, name: string): number | undefined {
  const raw = env[name];
  if (raw === undefined || raw === '') return undefined;
  if (!/^\d+$/.test(raw)) throw new ConfigError(`${name} must be an integer, got "${raw}"`);
  return Number(raw);
}

function envBool(env: NodeJS.ProcessEnv, name: string): boolean | undefined {
  const raw = env[name];
  if (raw === undefined || raw === '') return undefined;
  if (raw === 'true' || raw === '1') return true;
  if (raw === 'false' || raw === '0') return false;
  throw new ConfigError(`${name} must be true or false, got "${raw}"`);
}

/** Environment variables override the file; each maps to one documented key. */
export function envOverrides(env: NodeJS.ProcessEnv): DeepPartial<Config> {
  const port = envInt(env, 'PARLEY_HTTP_PORT');
  const mode = env.PARLEY_REGISTRATION_MODE;
  return {
    server_name: env.PARLEY_SERVER_NAME || undefined,
    data_dir: env.PARLEY_DATA_DIR ? path.resolve(env.PARLEY_DATA_DIR) : undefined,
    http: { port, host: env.PARLEY_HTTP_HOST || undefined },
    database: { url: env.DATABASE_URL || undefined },
    redis: {
      url: env.REDIS_URL || undefined,
      key_prefix: env.PARLEY_REDIS_PREFIX || undefined,
      cluster: envBool(env, 'PARLEY_REDIS_CLUSTER'),
    },
    registration: { mode: (mode || undefined) as Config['registration']['mode'] | undefined },
    logging: { level: (env.PARLEY_LOG_LEVEL || undefined) as Config['logging']['level'] | undefined },
    relay: {
      enabled: envBool(env, 'PARLEY_RELAY_ENABLED'),
      use: env.PARLEY_RELAY_USE || undefined,
    },
    federation: {
      listen: envBool(env, 'PARLEY_FEDERATION_LISTEN'),
      port: envInt(env, 'PARLEY_FEDERATION_PORT'),
      allow_private: env.PARLEY_FEDERATION_ALLOW_PRIVATE ? env.PARLEY_FEDERATION_ALLOW_PRIVATE.split(',').map((c) => c.trim()) : undefined,
    },
  };
}

export interface LoadOptions {
  env?: NodeJS.ProcessEnv;
  /** Explicit file; otherwise PARLEY_CONFIG, otherwise ./parley.yaml when it exists. */
  file?: string;
  overrides?: DeepPartial<Config>;
}

export function loadConfig(options: LoadOptions = {}): Config {
  const env = options.env ?? process.env;
  const file = options.file ?? env.PARLEY_CONFIG ?? (existsSync('parley.yaml') ? 'parley.yaml' : undefined);
  let fromFile: unknown = {};
  if (file) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new ConfigError(`cannot read config file ${file}: ${(err as Error).message}`);
    }
    try {
      fromFile = parseYaml(text) ?? {};
    } catch (err) {
      throw new ConfigError(`config file ${file} is not valid YAML: ${(err as Error).message}`);
    }
    if (!isPlainObject(fromFile)) throw new ConfigError(`config file ${file} must hold a mapping`);
  }
  let config = mergeConfig(defaultConfig(), fromFile);
  config = mergeConfig(config, envOverrides(env));
  config = mergeConfig(config, options.overrides ?? {});
  // The default server name follows the port so a local server names itself correctly.
  if (!(isPlainObject(fromFile) && 'server_name' in fromFile) && !env.PARLEY_SERVER_NAME && !options.overrides?.server_name) {
    config.server_name = `localhost:${config.http.port}`;
  }
  const valid = validateConfig(config);
  if (file) loadedFrom.set(valid, file);
  return valid;
}

const loadedFrom = new WeakMap<Config, string>();

/** The file a configuration was read from (the admin console shows each key's source). */
export function configFileOf(config: Config): string | undefined {
  return loadedFrom.get(config);
}

export function validateConfig(config: unknown): Config {
  const result = check(ConfigSchema, config);
  if (!result.ok) throw new ConfigError(`invalid configuration: ${result.field || 'config'}: ${result.message}`);
  if (!isServerName(result.value.server_name)) {
    throw new ConfigError(
      `invalid configuration: server_name "${result.value.server_name}" is not a DNS name or IP literal with optional port`,
    );
  }
  checkRelayConfig(result.value);
  return result.value;
}

/** A server nobody can dial must name a relay; a relay must be dialable (docs/operator-guide.md). */
function checkRelayConfig(config: Config): void {
  const { federation, relay } = config;
  if (relay.use !== null && !isServerName(relay.use)) {
    throw new ConfigError(`invalid configuration: relay.use "${relay.use}" is not a server name`);
  }
  if (relay.use !== null && relay.use === config.server_name) {
    throw new ConfigError('invalid configuration: relay.use names this server itself; name another server that has relay.enabled');
  }
  if (!federation.enabled) return;
  if (!federation.listen && relay.use === null) {
    throw new ConfigError(
      'federation.listen is off (no inbound port), so other servers cannot reach this one: set relay.use (PARLEY_RELAY_USE) to the server name of an anchor relay, or set federation.enabled: false to run without federation',
    );
  }
  if (!federation.listen && relay.enabled) {
    throw new ConfigError('relay.enabled needs the inbound federation port: set federation.listen: true, or relay.enabled: false');
  }
}
