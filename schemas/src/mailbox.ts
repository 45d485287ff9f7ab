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

// PUT /mailbox/v1/send/:sendId
export const SendBlobResponse = Type.Object({ msg_id: Type.String({ pattern: MAILBOX_MESSAGE_ID_PATTERN }) });
export type SendBlobResponse = Static<typeof SendBlobResponse>;

// GET /mailbox/v1/queues/:receiveId/messages
export const MailboxMessage = Type.Object({
  msg_id: Type.String({ pattern: MAILBOX_MESSAGE_ID_PATTERN }),
  /** When the server stored it (ms). */
  ts: Type.Integer({ minimum: 0 }),
  /** The blob as sent, base64url (the server strips its own padding). */
  body: Type.String({ pattern: '^[A-Za-z0-9_-]*$' }),
});
export type MailboxMessage = Static<typeof MailboxMessage>;

export const MailboxMessagesResponse = Type.Object({
  messages: Type.Array(MailboxMessage),
  /** Whether more messages wait after these (acknowledge these, then ask again). */
  more: Type.Boolean(),
});
export type MailboxMessagesResponse = Static<typeof MailboxMessagesResponse>;
