import { type Static, Type } from '@sinclair/typebox';
import { KEY_NAME_PATTERN, KeyDocumentSignatures, TlsFingerprint, VerifyKey } from './federation-keys.js';
import { SERVER_NAME_PATTERN } from './ids.js';

/**
 * Bootstrap node lists. A server whose operator opts in (`bootstrap.announce`) publishes a
 * descriptor of itself, signed with its server key; servers gossip descriptors, each verified
 * against the key of the server it names, never against the key of whoever passed it on. A
 * server that does not announce signs no descriptor, so nobody can list it.
 */

export const MAX_DESCRIPTOR_ENDPOINTS = 4;
/** Longest a descriptor may claim to be valid, counted from `issued_ts`. */
export const MAX_DESCRIPTOR_VALIDITY_MS = 7 * 86_400_000;
/** Descriptors in one list answer or one announcement. */
export const MAX_BOOTSTRAP_BATCH = 256;
export const MAX_ANNOUNCE_HOPS = 4;

export const BootstrapCapability = Type.Union([Type.Literal('relay'), Type.Literal('mailbox'), Type.Literal('mirror')]);
export type BootstrapCapability = Static<typeof BootstrapCapability>;

const Timestamp = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER });

/** Where the server's federation listener answers (what its network group is taken from). */
export const BootstrapEndpoint = Type.Object(
  {
    host: Type.String({ minLength: 1, maxLength: 255, pattern: '^[A-Za-z0-9.:_\\[\\]-]+$' }),
    port: Type.Integer({ minimum: 1, maximum: 65535 }),
  },
  { additionalProperties: false },
);
export type BootstrapEndpoint = Static<typeof BootstrapEndpoint>;

/** Published limits of the capabilities offered (e.g. a mailbox's block size and TTL). */
export const BootstrapLimits = Type.Record(Type.String({ pattern: '^[a-z][a-z0-9_]{0,63}$' }), Type.Integer({ minimum: 0 }), {
  maxProperties: 32,
});

export const BootstrapDescriptor = Type.Object(
  {
    server_name: Type.String({ pattern: SERVER_NAME_PATTERN, maxLength: 255 }),
    endpoints: Type.Array(BootstrapEndpoint, { minItems: 1, maxItems: MAX_DESCRIPTOR_ENDPOINTS }),
    verify_keys: Type.Record(Type.String({ pattern: KEY_NAME_PATTERN }), VerifyKey, {
      minProperties: 1,
      maxProperties: 4,
      additionalProperties: false,
    }),
    tls_fingerprints: Type.Array(TlsFingerprint, { maxItems: 8 }),
    capabilities: Type.Array(BootstrapCapability, { maxItems: 3, uniqueItems: true }),
    limits: BootstrapLimits,
    /** When the server signed it: a newer descriptor of the same server replaces an older one, never the reverse. */
    issued_ts: Timestamp,
    valid_until_ts: Timestamp,
    signatures: KeyDocumentSignatures,
  },
  { additionalProperties: false },
);
export type BootstrapDescriptor = Static<typeof BootstrapDescriptor>;

/** `GET /federation/v1/bootstrap/list` answer. */
export const BootstrapList = Type.Object(
  { descriptors: Type.Array(Type.Unknown(), { maxItems: MAX_BOOTSTRAP_BATCH }) },
  { additionalProperties: false },
);
export type BootstrapList = Static<typeof BootstrapList>;

/** `POST /federation/v1/bootstrap/announce`: descriptors pushed on change, with a hop limit. */
export const BootstrapAnnounce = Type.Object(
  {
    descriptors: Type.Array(Type.Unknown(), { minItems: 1, maxItems: MAX_BOOTSTRAP_BATCH }),
    hops: Type.Integer({ minimum: 0, maximum: MAX_ANNOUNCE_HOPS }),
  },
  { additionalProperties: false },
);
export type BootstrapAnnounce = Static<typeof BootstrapAnnounce>;

/** The signed fallback list shipped with a release: descriptors of long-lived servers. */
export const BootstrapFallbackList = Type.Object(
  { descriptors: Type.Array(Type.Unknown(), { maxItems: 1024 }) },
  { additionalProperties: false },
);
export type BootstrapFallbackList = Static<typeof BootstrapFallbackList>;

/** `PUT /api/v1/admin/bootstrap/:server/pin`. */
export const AdminBootstrapPinRequest = Type.Object({ pinned: Type.Boolean() }, { additionalProperties: false });
export type AdminBootstrapPinRequest = Static<typeof AdminBootstrapPinRequest>;

/** What the client API and the admin API show of one known server. */
export const KnownServer = Type.Object({
  server_name: Type.String(),
  capabilities: Type.Array(BootstrapCapability),
  table: Type.Union([Type.Literal('new'), Type.Literal('tried')]),
  pinned: Type.Boolean(),
  anchor: Type.Boolean(),
  source: Type.String(),
  last_success_ts: Type.Union([Type.Integer(), Type.Null()]),
  failures: Type.Integer(),
  valid_until_ts: Type.Integer(),
});
export type KnownServer = Static<typeof KnownServer>;

/** `PUT /api/v1/admin/updates/client`: a file of the verified release to serve as the web client. */
export const AdminClientBundleRequest = Type.Object(
  { path: Type.String({ minLength: 1, maxLength: 1024, pattern: '^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$' }) },
  { additionalProperties: false },
);
export type AdminClientBundleRequest = Static<typeof AdminClientBundleRequest>;

/** `GET /api/v1/directory/servers`: servers known from bootstrap lists, for the client's server browser. */
export const ServerDirectoryEntry = Type.Object({
  server_name: Type.String(),
  capabilities: Type.Array(BootstrapCapability),
  /** This server has talked to it successfully (the address book's "tried" table). */
  verified_contact: Type.Boolean(),
});
export type ServerDirectoryEntry = Static<typeof ServerDirectoryEntry>;
export const ServerDirectory = Type.Object({ servers: Type.Array(ServerDirectoryEntry) });
export type ServerDirectory = Static<typeof ServerDirectory>;
