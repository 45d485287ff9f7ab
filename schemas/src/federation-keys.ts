import { type Static, Type } from '@sinclair/typebox';
import { SERVER_NAME_PATTERN } from './ids.js';

/**
 * Server key documents (docs/protocol.md, "Federation"): `GET /federation/v1/keys` returns one, self-signed
 * by a current key; the notary endpoint `POST /federation/v1/keys/query` returns the ones it
 * fetched with its own signature added. Signed bytes: the canonical document without
 * `signatures` (and `unsigned`, which a key document never has).
 *
 * Closed objects throughout: a member a verifier does not understand would still be signed,
 * so a later format gets a new endpoint version rather than fields old servers skip.
 */

export const MAX_KEY_DOCUMENT_KEYS = 16;
export const MAX_TLS_FINGERPRINTS = 8;
/** The server itself plus the notaries that vouched for the document on its way. */
export const MAX_KEY_DOCUMENT_SIGNERS = 8;
export const MAX_KEY_QUERY_SERVERS = 32;
export const MAX_KEY_QUERY_DOCUMENTS = 64;

/** `ed25519:<keyId>`, the key's name in documents and signatures. */
export const KEY_NAME_PATTERN = '^ed25519:[A-Za-z0-9_]{1,64}$';
// Unpadded base64url of 32 bytes (keys, SHA-256) and of 64 bytes (signatures).
const B64U_32_PATTERN = '^[A-Za-z0-9_-]{43}$';
const B64U_64_PATTERN = '^[A-Za-z0-9_-]{86}$';

const Timestamp = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER });
const ServerNameKey = Type.String({ pattern: SERVER_NAME_PATTERN });
const KeyName = Type.String({ pattern: KEY_NAME_PATTERN });

export const VerifyKey = Type.Object({ key: Type.String({ pattern: B64U_32_PATTERN }) }, { additionalProperties: false });
export type VerifyKey = Static<typeof VerifyKey>;

export const OldVerifyKey = Type.Object(
  { key: Type.String({ pattern: B64U_32_PATTERN }), expired_ts: Timestamp },
  { additionalProperties: false },
);
export type OldVerifyKey = Static<typeof OldVerifyKey>;

/** SHA-256 of the DER certificate the federation listener presents, for peers to pin. */
export const TlsFingerprint = Type.Object({ sha256: Type.String({ pattern: B64U_32_PATTERN }) }, { additionalProperties: false });
export type TlsFingerprint = Static<typeof TlsFingerprint>;

/** `{ <server>: { "ed25519:<keyId>": <sig> } }` with the counts a key document may carry. */
export const KeyDocumentSignatures = Type.Record(
  ServerNameKey,
  Type.Record(KeyName, Type.String({ pattern: B64U_64_PATTERN }), {
    minProperties: 1,
    maxProperties: MAX_KEY_DOCUMENT_KEYS,
    additionalProperties: false,
  }),
  { maxProperties: MAX_KEY_DOCUMENT_SIGNERS, additionalProperties: false, propertyNames: { maxLength: 255 } },
);
export type KeyDocumentSignatures = Static<typeof KeyDocumentSignatures>;

/** The relay a server without an inbound port is reached through, while its reservation lasts (docs/protocol.md). */
export const KeyDocumentRelay = Type.Object(
  { via: Type.String({ pattern: SERVER_NAME_PATTERN, maxLength: 255 }), until: Timestamp },
  { additionalProperties: false },
);
export type KeyDocumentRelay = Static<typeof KeyDocumentRelay>;

/** Capabilities a server offers other servers, each with its published limits (`relay`: see docs/protocol.md). */
export const KeyDocumentCapabilities = Type.Object(
  {
    relay: Type.Optional(
      Type.Record(Type.String({ pattern: '^[a-z_]{1,40}$' }), Type.Integer({ minimum: 0 }), {
        maxProperties: 32,
        additionalProperties: false,
      }),
    ),
  },
  { additionalProperties: false },
);
export type KeyDocumentCapabilities = Static<typeof KeyDocumentCapabilities>;

export const ServerKeyDocument = Type.Object(
  {
    server_name: Type.String({ pattern: SERVER_NAME_PATTERN, maxLength: 255 }),
    verify_keys: Type.Record(KeyName, VerifyKey, {
      minProperties: 1,
      maxProperties: MAX_KEY_DOCUMENT_KEYS,
      additionalProperties: false,
    }),
    old_verify_keys: Type.Record(KeyName, OldVerifyKey, { maxProperties: MAX_KEY_DOCUMENT_KEYS, additionalProperties: false }),
    tls_fingerprints: Type.Array(TlsFingerprint, { maxItems: MAX_TLS_FINGERPRINTS }),
    valid_until_ts: Timestamp,
    relay: Type.Optional(KeyDocumentRelay),
    capabilities: Type.Optional(KeyDocumentCapabilities),
    signatures: KeyDocumentSignatures,
  },
  { additionalProperties: false },
);
export type ServerKeyDocument = Static<typeof ServerKeyDocument>;

/** Criteria for one key in a notary query; `minimum_valid_until_ts` asks for a fresh enough document. */
export const KeyQueryCriteria = Type.Object({ minimum_valid_until_ts: Type.Optional(Timestamp) }, { additionalProperties: false });
export type KeyQueryCriteria = Static<typeof KeyQueryCriteria>;

/** `POST /federation/v1/keys/query`: `{ server_keys: { <server>: { "ed25519:<keyId>" | "*": criteria } } }`. */
export const KeyQueryRequest = Type.Object(
  {
    server_keys: Type.Record(
      ServerNameKey,
      Type.Record(Type.String({ pattern: '^(?:\\*|ed25519:[A-Za-z0-9_]{1,64})$' }), KeyQueryCriteria, {
        minProperties: 1,
        maxProperties: MAX_KEY_DOCUMENT_KEYS,
        additionalProperties: false,
      }),
      { minProperties: 1, maxProperties: MAX_KEY_QUERY_SERVERS, additionalProperties: false, propertyNames: { maxLength: 255 } },
    ),
  },
  { additionalProperties: false },
);
export type KeyQueryRequest = Static<typeof KeyQueryRequest>;

/** The notary's answer: the documents it holds for the servers asked, each with its signature added. */
export const KeyQueryResponse = Type.Object(
  { server_keys: Type.Array(ServerKeyDocument, { maxItems: MAX_KEY_QUERY_DOCUMENTS }) },
  { additionalProperties: false },
);
export type KeyQueryResponse = Static<typeof KeyQueryResponse>;
