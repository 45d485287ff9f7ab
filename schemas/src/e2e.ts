import { type Static, Type } from '@sinclair/typebox';
import { EventId, RoomId } from './events.js';
import { DeviceId, SERVER_NAME_PATTERN, UserId } from './ids.js';

/**
 * End-to-end encryption wire formats (docs/protocol.md, MLS RFC 9420). Servers store and forward
 * what is here; every MLS structure is opaque unpadded base64url that only clients parse.
 * The server checks shapes, sizes and counts, and the Ed25519 self-signature of a device
 * list (consistency only: trust in a user signing key comes from the user's contacts).
 */

/** The one algorithm name of `room.encryption`: MLS, ciphersuite 3 (X25519, ChaCha20-Poly1305, SHA-256, Ed25519). */
export const MLS_ALGORITHM = 'mls.rfc9420.cs3';

// Caps, in decoded bytes unless named otherwise.
export const MAX_KEY_PACKAGE_BYTES = 8 * 1024;
export const MAX_KEY_PACKAGES_PER_UPLOAD = 100;
/** One-time packages a device may hold on the server. */
export const MAX_KEY_PACKAGES_PER_DEVICE = 200;
/** Below this many one-time packages a device should upload more. */
export const KEY_PACKAGE_LOW_WATER_MARK = 10;
export const MAX_CLAIM_USERS = 100;
export const MAX_CLAIM_DEVICES = 1000;
export const MAX_QUERY_USERS = 100;
export const MAX_DEVICE_LIST_DEVICES = 100;
export const MAX_BACKUP_BYTES = 4 * 1024 * 1024;
/** A commit or encrypted message in an event (content cap is 48 KiB). */
export const MAX_MLS_MESSAGE_B64 = 45 * 1024;
export const MAX_WELCOME_B64 = 40 * 1024;

/** base64url length of n bytes, without padding. */
const b64Len = (bytes: number) => Math.ceil((bytes * 4) / 3);
const B64U = '^[A-Za-z0-9_-]*$';
const b64u = (maxBytes: number, minLength = 1) => Type.String({ pattern: B64U, minLength, maxLength: b64Len(maxBytes) });
/** A 32-byte Ed25519 public key or a 64-byte signature, unpadded base64url. */
const Ed25519PublicKey = Type.String({ pattern: '^[A-Za-z0-9_-]{43}$' });
const Ed25519Signature = Type.String({ pattern: '^[A-Za-z0-9_-]{86}$' });
/** A media URI of this network, where a large MLS blob (Welcome, GroupInfo) was uploaded. */
const MediaRef = Type.String({ pattern: '^parley://[^\\s/]+/[A-Za-z0-9_-]{1,128}$', maxLength: 512 });
const ServerErrors = Type.Record(
  Type.String({ pattern: SERVER_NAME_PATTERN }),
  Type.Object({ code: Type.String(), message: Type.String() }),
);

// ---- key packages ------------------------------------------------------------------------------

export const KeyPackage = b64u(MAX_KEY_PACKAGE_BYTES);

// POST /api/v1/keys/upload — for the caller's device (from the token).
export const KeyUploadRequest = Type.Object(
  {
    /** One-time MLS KeyPackages (MLSMessage-wrapped or bare, as the sdk writes them). */
    key_packages: Type.Optional(Type.Array(KeyPackage, { maxItems: MAX_KEY_PACKAGES_PER_UPLOAD, uniqueItems: true })),
    /** Replaces the device's last-resort package, handed out (and kept) when no one-time package is left. */
    last_resort: Type.Optional(KeyPackage),
  },
  { additionalProperties: false },
);
export type KeyUploadRequest = Static<typeof KeyUploadRequest>;

// Answer to POST /api/v1/keys/upload and GET /api/v1/keys/count.
export const KeyCountResponse = Type.Object({
  one_time_remaining: Type.Integer({ minimum: 0 }),
  has_last_resort: Type.Boolean(),
  /** Refill when `one_time_remaining` is below this. */
  low_water_mark: Type.Integer({ minimum: 0 }),
});
export type KeyCountResponse = Static<typeof KeyCountResponse>;

/**
 * POST /api/v1/keys/claim and POST /federation/v1/user/keys/claim:
 * `users[user_id] = [device_id…]`, an empty list meaning every device of that user.
 */
export const KeyClaimRequest = Type.Object(
  {
    users: Type.Record(UserId, Type.Array(DeviceId, { maxItems: MAX_DEVICE_LIST_DEVICES, uniqueItems: true }), {
      minProperties: 1,
      maxProperties: MAX_CLAIM_USERS,
    }),
  },
  { additionalProperties: false },
);
export type KeyClaimRequest = Static<typeof KeyClaimRequest>;

export const ClaimedKeyPackage = Type.Object({
  key_package: KeyPackage,
  /** The device's last-resort package: not used up, and a sign the device must refill. */
  last_resort: Type.Boolean(),
  /** One-time packages the device has left after this claim. */
  remaining: Type.Integer({ minimum: 0 }),
});
export type ClaimedKeyPackage = Static<typeof ClaimedKeyPackage>;

/** A device with no package at all is absent from `key_packages`. */
export const KeyClaimResponse = Type.Object({
  key_packages: Type.Record(UserId, Type.Record(DeviceId, ClaimedKeyPackage)),
  /** Servers that could not be asked (client API only). */
  failures: Type.Optional(ServerErrors),
});
export type KeyClaimResponse = Static<typeof KeyClaimResponse>;

// ---- signed device lists -----------------------------------------------------------------------

/**
 * A device's mailbox queue (docs/protocol.md "Mailbox delivery of Welcomes"): where senders
 * deposit Welcomes for it when its homeserver cannot be reached. Covered by the device list's
 * signature, so a homeserver cannot redirect it.
 */
export const DeviceMailbox = Type.Object(
  {
    /** Base URL of the mailbox server (its client API). */
    url: Type.String({ pattern: '^https?://[^\\s/?#]+(/[^\\s?#]*)?$', minLength: 8, maxLength: 256 }),
    /** The queue's send ID (the receive ID and queue key stay on the device). */
    send_id: Type.String({ pattern: '^[A-Za-z0-9_-]{32}$' }),
    /** X25519 public key deposits are sealed to, so the mailbox server sees only opaque blocks. */
    seal_key: Type.String({ pattern: '^[A-Za-z0-9_-]{43}$' }),
  },
  { additionalProperties: false },
);
export type DeviceMailbox = Static<typeof DeviceMailbox>;

export const SignedDevice = Type.Object(
  {
    device_id: DeviceId,
    /** The device's MLS leaf signature key. */
    signature_key: Ed25519PublicKey,
    /** The user signing key's signature over this device's credential (format: sdk crypto). */
    credential_signature: Ed25519Signature,
    /** Optional: the device's mailbox queue (absent in lists written before it existed). */
    mailbox: Type.Optional(DeviceMailbox),
  },
  { additionalProperties: false },
);
export type SignedDevice = Static<typeof SignedDevice>;

/**
 * A user's devices, signed by their user signing key: `signature` is Ed25519 over the RFC 8785
 * canonical JSON of the object without `signature`. `version` only grows.
 */
export const SignedDeviceList = Type.Object(
  {
    user_id: UserId,
    user_signing_key: Ed25519PublicKey,
    devices: Type.Array(SignedDevice, { maxItems: MAX_DEVICE_LIST_DEVICES }),
    version: Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER }),
    signature: Ed25519Signature,
  },
  { additionalProperties: false },
);
export type SignedDeviceList = Static<typeof SignedDeviceList>;

// PUT /api/v1/keys/device_list (body: SignedDeviceList)
export const DeviceListPutResponse = Type.Object({ version: Type.Integer({ minimum: 1 }) });
export type DeviceListPutResponse = Static<typeof DeviceListPutResponse>;

/**
 * What a homeserver says about one of its users: the list the user signed (null before the
 * first upload) and the devices the server knows to be signed in. A device in the signed list
 * but not in `devices` has been signed out; clients add only devices in both.
 */
export const DeviceListAnswer = Type.Object(
  {
    user_id: UserId,
    device_list: Type.Union([SignedDeviceList, Type.Null()]),
    devices: Type.Array(DeviceId, { maxItems: 1000 }),
  },
  { additionalProperties: false },
);
export type DeviceListAnswer = Static<typeof DeviceListAnswer>;

// POST /api/v1/keys/query and POST /federation/v1/user/keys/query
export const DeviceKeysQueryRequest = Type.Object(
  { users: Type.Array(UserId, { minItems: 1, maxItems: MAX_QUERY_USERS, uniqueItems: true }) },
  { additionalProperties: false },
);
export type DeviceKeysQueryRequest = Static<typeof DeviceKeysQueryRequest>;

/** Unknown users are absent; `failures` names servers that could not be asked (client API only). */
export const DeviceKeysQueryResponse = Type.Object({
  device_lists: Type.Record(UserId, DeviceListAnswer),
  failures: Type.Optional(ServerErrors),
});
export type DeviceKeysQueryResponse = Static<typeof DeviceKeysQueryResponse>;

/**
 * Federation EDU: a user's device list changed (new signed list, device signed in or out).
 * Durable (outbox, latest per user wins, kept until delivered); the receiver caches it for
 * `keys/query` when the user's server is unreachable and tells its local users who share a
 * room with the user (stream frame `device_list`).
 */
export const DeviceListEdu = Type.Object(
  {
    type: Type.Literal('device_list'),
    user_id: UserId,
    answer: DeviceListAnswer,
  },
  { additionalProperties: false },
);
export type DeviceListEdu = Static<typeof DeviceListEdu>;

// ---- key backup --------------------------------------------------------------------------------

// PUT /api/v1/keys/backup (or `If-Match: <etag>` instead of `expected_version`)
export const KeyBackupPutRequest = Type.Object(
  {
    /** Encrypted client-side with the recovery key; never readable by the server. */
    ciphertext: b64u(MAX_BACKUP_BYTES),
    /** The client's name for the backup format (e.g. `xchacha20poly1305-hkdf-sha256.v1`). */
    algorithm: Type.String({ minLength: 1, maxLength: 128 }),
    /** The version being replaced; null to create the first backup. */
    expected_version: Type.Optional(Type.Union([Type.Integer({ minimum: 1 }), Type.Null()])),
  },
  { additionalProperties: false },
);
export type KeyBackupPutRequest = Static<typeof KeyBackupPutRequest>;

export const KeyBackupPutResponse = Type.Object({ version: Type.Integer({ minimum: 1 }), etag: Type.String() });
export type KeyBackupPutResponse = Static<typeof KeyBackupPutResponse>;

// GET /api/v1/keys/backup
export const KeyBackup = Type.Object({
  version: Type.Integer({ minimum: 1 }),
  etag: Type.String(),
  ciphertext: Type.String(),
  algorithm: Type.String(),
  updated_ts: Type.Integer({ minimum: 0 }),
});
export type KeyBackup = Static<typeof KeyBackup>;

// ---- to-device: Welcomes -----------------------------------------------------------------------

/** To-device message type of an MLS Welcome (sent with PUT /api/v1/send_to_device/mls.welcome/:txnId). */
export const MLS_WELCOME_TYPE = 'mls.welcome';

export const MlsWelcomeContent = Type.Object(
  {
    room_id: RoomId,
    /** The epoch the Welcome admits into (the commit's epoch + 1). */
    epoch: Type.Integer({ minimum: 0 }),
    welcome: Type.Optional(Type.String({ pattern: B64U, minLength: 1, maxLength: MAX_WELCOME_B64 })),
    /** When the Welcome is too large to travel inline: uploaded to media. */
    welcome_ref: Type.Optional(MediaRef),
    /** The room.mls.commit that added the device. */
    commit_event_id: Type.Optional(EventId),
  },
  { additionalProperties: false },
);
export type MlsWelcomeContent = Static<typeof MlsWelcomeContent>;

// ---- room events -------------------------------------------------------------------------------

/** `room.encryption` content for MLS rooms (state, state_key ''). Irreversible once set. */
export const MlsEncryptionContent = Type.Object({ algorithm: Type.Literal(MLS_ALGORITHM) }, { additionalProperties: false });
export type MlsEncryptionContent = Static<typeof MlsEncryptionContent>;

/**
 * `room.mls.commit`: an MLS Commit (MLSMessage, PublicMessage). The host sequences it only
 * when `epoch` equals the room's current epoch E (first commit wins), which then becomes
 * `epoch + 1`. E counts the commits the host sequenced (a commit slot); it equals the MLS
 * epoch until a member gets an invalid commit sequenced, which every device skips (it still
 * uses its slot). Send `epoch` = the number of commits sequenced in the room before.
 */
export const MlsCommitContent = Type.Object(
  {
    epoch: Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER }),
    commit: Type.String({ pattern: B64U, minLength: 1, maxLength: MAX_MLS_MESSAGE_B64 }),
    /** Welcome for the devices this commit adds, when uploaded to media instead of sent to-device inline. */
    welcome_ref: Type.Optional(MediaRef),
    /** GroupInfo of the new epoch, for external joins: inline or uploaded to media. */
    group_info: Type.Optional(Type.String({ pattern: B64U, minLength: 1, maxLength: 16 * 1024 })),
    group_info_ref: Type.Optional(MediaRef),
  },
  { additionalProperties: false },
);
export type MlsCommitContent = Static<typeof MlsCommitContent>;

/** `room.mls.proposal`: an MLS Proposal (e.g. a leaving member's self-remove) for the current epoch. */
export const MlsProposalContent = Type.Object(
  {
    epoch: Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER }),
    proposal: Type.String({ pattern: B64U, minLength: 1, maxLength: MAX_MLS_MESSAGE_B64 }),
  },
  { additionalProperties: false },
);
export type MlsProposalContent = Static<typeof MlsProposalContent>;

/**
 * `room.encrypted`: an MLS PrivateMessage. Nothing else may ride along in the clear (unknown
 * fields are refused), so a client bug cannot leak plaintext into the room log.
 */
export const EncryptedContent = Type.Object(
  {
    epoch: Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER }),
    ciphertext: Type.String({ pattern: B64U, minLength: 1, maxLength: MAX_MLS_MESSAGE_B64 }),
  },
  { additionalProperties: false },
);
export type EncryptedContent = Static<typeof EncryptedContent>;

/** Event types an encrypted room still takes from clients besides state events. */
export const ENCRYPTED_ROOM_MESSAGE_TYPES: readonly string[] = ['room.encrypted', 'room.mls.commit', 'room.mls.proposal', 'room.redaction'];
