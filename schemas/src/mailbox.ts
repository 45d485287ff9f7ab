import { type Static, Type } from '@sinclair/typebox';

/**
 * Mailbox queues (docs/protocol.md), after SimpleX's SMP queues: a queue has a random receive ID
 * and an unrelated random send ID, and an Ed25519 queue key. Whoever holds the send ID may
 * deposit a blob; only a request signed by the queue key may read, acknowledge or delete.
 * No account is involved, so the mailbox server cannot tell whose queue it is.
 */

/** 24 random bytes in base64url without padding. */
export const QUEUE_ID_PATTERN = '^[A-Za-z0-9_-]{32}$';
export const QueueId = Type.String({ pattern: QUEUE_ID_PATTERN });
/** A 32-byte Ed25519 public key in base64url without padding. */
export const QueueKey = Type.String({ pattern: '^[A-Za-z0-9_-]{43}$' });
/** Message IDs are server-chosen: 16 random bytes in base64url. */
export const MAILBOX_MESSAGE_ID_PATTERN = '^[A-Za-z0-9_-]{22}$';

/** The scheme of the Authorization header of a signed queue request. */
export const MAILBOX_AUTH_SCHEME = 'ParleyQueue';
/** Every block starts with the content length as a 4-byte big-endian integer. */
export const MAILBOX_LENGTH_PREFIX_BYTES = 4;

/** The largest blob a sender may deposit in blocks of `blockBytes`. */
export function mailboxMaxBlobBytes(blockBytes: number): number {
  return blockBytes - MAILBOX_LENGTH_PREFIX_BYTES;
}

/**
 * Pads `blob` to exactly `blockBytes`: a 4-byte big-endian length, the blob, zeros. The
 * sender pads, so every block the mailbox server sees has the same size. Throws a RangeError
 * when the blob does not fit.
 */
export function padMailboxBlock(blob: Uint8Array, blockBytes: number): Uint8Array {
  if (!(blob instanceof Uint8Array)) throw new TypeError('blob: expected a Uint8Array');
  if (!Number.isSafeInteger(blockBytes) || blockBytes <= MAILBOX_LENGTH_PREFIX_BYTES) throw new TypeError('blockBytes: too small');
  if (blob.length > mailboxMaxBlobBytes(blockBytes))
    throw new RangeError(`blob: ${blob.length} bytes do not fit a ${blockBytes}-byte block`);
  const block = new Uint8Array(blockBytes);
  new DataView(block.buffer).setUint32(0, blob.length, false);
  block.set(blob, MAILBOX_LENGTH_PREFIX_BYTES);
  return block;
}

/**
 * The blob inside a block; null when the padding is bad: a length prefix that does not fit,
 * a padding byte that is not zero, or (given `blockBytes`) a block of another size.
 */
export function unpadMailboxBlock(block: Uint8Array, blockBytes?: number): Uint8Array | null {
  if (!(block instanceof Uint8Array) || block.length < MAILBOX_LENGTH_PREFIX_BYTES) return null;
  if (blockBytes !== undefined && block.length !== blockBytes) return null;
  const length = new DataView(block.buffer, block.byteOffset, block.byteLength).getUint32(0, false);
  if (length > block.length - MAILBOX_LENGTH_PREFIX_BYTES) return null;
  for (let i = MAILBOX_LENGTH_PREFIX_BYTES + length; i < block.length; i++) if (block[i] !== 0) return null;
  return block.subarray(MAILBOX_LENGTH_PREFIX_BYTES, MAILBOX_LENGTH_PREFIX_BYTES + length);
}

const queueIdRe = new RegExp(QUEUE_ID_PATTERN);
const messageIdRe = new RegExp(MAILBOX_MESSAGE_ID_PATTERN);

export function isQueueId(id: unknown): id is string {
  return typeof id === 'string' && queueIdRe.test(id);
}

export function isMailboxMessageId(id: unknown): id is string {
  return typeof id === 'string' && messageIdRe.test(id);
}

/**
 * The bytes a queue key signs for a receive, acknowledge or delete: the method, the path
 * (which names the receive ID), the timestamp and nonce from the header, and the SHA-256 of
 * the body (base64url; of the empty string when there is none). Lines, so no field can
 * run into the next: none of them may hold a newline.
 */
export function mailboxSigningInput(method: string, path: string, ts: number, nonce: string, bodySha256: string): string {
  for (const [name, value] of [
    ['method', method],
    ['path', path],
    ['nonce', nonce],
    ['bodySha256', bodySha256],
  ] as const) {
    if (typeof value !== 'string' || value === '' || /[\r\n]/.test(value)) throw new TypeError(`${name}: expected a one-line string`);
  }
  if (!Number.isSafeInteger(ts) || ts < 0) throw new TypeError('ts: expected a non-negative integer (ms since the epoch)');
  return `parley-mailbox-v1\n${method.toUpperCase()}\n${path}\n${ts}\n${nonce}\n${bodySha256}`;
}

export interface QueueAuthHeader {
  ts: number;
  nonce: string;
  sig: string;
}

const authRe = /^ParleyQueue ts=(\d{1,16}),nonce=([A-Za-z0-9_-]{16,64}),sig=([A-Za-z0-9_-]{86})$/;

/** Parses `ParleyQueue ts=<ms>,nonce=<b64u>,sig=<b64u>`; null for anything else. */
export function parseQueueAuth(header: unknown): QueueAuthHeader | null {
  if (typeof header !== 'string' || header.length > 256) return null;
  const m = authRe.exec(header);
  if (!m) return null;
  const ts = Number(m[1]);
  if (!Number.isSafeInteger(ts)) return null;
  return { ts, nonce: m[2] as string, sig: m[3] as string };
}

export function formatQueueAuth(auth: QueueAuthHeader): string {
  return `${MAILBOX_AUTH_SCHEME} ts=${auth.ts},nonce=${auth.nonce},sig=${auth.sig}`;
}

// POST /mailbox/v1/queues
export const CreateQueueRequest = Type.Object({ queue_key: QueueKey }, { additionalProperties: false });
export type CreateQueueRequest = Static<typeof CreateQueueRequest>;

export const CreateQueueResponse = Type.Object({
  receive_id: QueueId,
  send_id: QueueId,
  /** The published limits, so a client knows them without a second request. */
  limits: Type.Object({
    block_bytes: Type.Integer({ minimum: 1 }),
    max_blob_bytes: Type.Integer({ minimum: 1 }),
    queue_quota: Type.Integer({ minimum: 1 }),
    ttl_ms: Type.Integer({ minimum: 1 }),
  }),
});
export type CreateQueueResponse = Static<typeof CreateQueueResponse>;

// PUT /mailbox/v1/send/:sendId — the body is one padded block of exactly block_bytes bytes.
export const SendBlobResponse = Type.Object({ msg_id: Type.String({ pattern: MAILBOX_MESSAGE_ID_PATTERN }) });
export type SendBlobResponse = Static<typeof SendBlobResponse>;

// GET /mailbox/v1/queues/:receiveId/messages
export const MailboxMessage = Type.Object({
  msg_id: Type.String({ pattern: MAILBOX_MESSAGE_ID_PATTERN }),
  /** When the server stored it (ms). */
  ts: Type.Integer({ minimum: 0 }),
  /** The block as the sender padded it (exactly block_bytes), base64url; the receiver unpads. */
  body: Type.String({ pattern: '^[A-Za-z0-9_-]*$' }),
});
export type MailboxMessage = Static<typeof MailboxMessage>;

export const MailboxMessagesResponse = Type.Object({
  messages: Type.Array(MailboxMessage),
  /** Whether more messages wait after these (acknowledge these, then ask again). */
  more: Type.Boolean(),
});
export type MailboxMessagesResponse = Static<typeof MailboxMessagesResponse>;

const Bucket = Type.Object({ burst: Type.Integer({ minimum: 1 }), per_minute: Type.Number({ minimum: 0 }) });

// GET /api/v1/admin/mailbox — aggregates only: no queue ID, key or address, nothing that names a user.
export const AdminMailboxView = Type.Object({
  enabled: Type.Boolean(),
  limits: Type.Object({
    block_bytes: Type.Integer({ minimum: 1 }),
    max_blob_bytes: Type.Integer({ minimum: 1 }),
    queue_quota: Type.Integer({ minimum: 1 }),
    server_quota_bytes: Type.Integer({ minimum: 1 }),
    /** A blob is dropped this long after it was sent. */
    ttl_ms: Type.Integer({ minimum: 1 }),
    /** A queue neither sent to nor read for this long is deleted. */
    idle_queue_ttl_ms: Type.Integer({ minimum: 1 }),
    create_per_ip: Bucket,
    send_per_ip: Bucket,
  }),
  usage: Type.Object({
    queues: Type.Integer({ minimum: 0 }),
    /** Blocks stored, expired ones included until the purge drops them. */
    blobs: Type.Integer({ minimum: 0 }),
    bytes: Type.Integer({ minimum: 0 }),
    expired_blobs: Type.Integer({ minimum: 0 }),
    /** Queues holding queue_quota live blobs (senders are refused until the receiver reads). */
    full_queues: Type.Integer({ minimum: 0 }),
    fullest_queue_blobs: Type.Integer({ minimum: 0 }),
    /** bytes / server_quota_bytes. */
    server_quota_used: Type.Number({ minimum: 0 }),
  }),
  /** Refused requests since this process started. */
  refusals: Type.Object({
    queue_quota: Type.Integer({ minimum: 0 }),
    server_quota: Type.Integer({ minimum: 0 }),
    bad_size: Type.Integer({ minimum: 0 }),
    auth: Type.Integer({ minimum: 0 }),
    rate_limited: Type.Integer({ minimum: 0 }),
  }),
  /** The last cleanup run of this process: when, and how many blocks and idle queues it dropped. */
  last_purge: Type.Union([
    Type.Object({ ts: Type.Integer({ minimum: 0 }), blobs: Type.Integer({ minimum: 0 }), queues: Type.Integer({ minimum: 0 }) }),
    Type.Null(),
  ]),
});
export type AdminMailboxView = Static<typeof AdminMailboxView>;
