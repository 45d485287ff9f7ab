import { createHash, randomBytes } from 'node:crypto';
import { mailboxSigningInput, parseQueueAuth } from '@parley/schemas';
import { verifyBytes } from '../keys/ed25519.js';
import { publicKeyFromB64u } from '../keys/signing-key.js';

/**
 * Mailbox queues (docs/protocol.md), the protocol rules without storage: queue IDs, the signed
 * request check and fixed-size blocks. After SimpleX SMP: the receive ID and the send ID
 * are drawn separately, so neither can be computed from the other, and the receiver proves
 * itself with the queue key, never with an account.
 */

export const QUEUE_ID_BYTES = 24;
export const MESSAGE_ID_BYTES = 16;
/** How far a signed request's timestamp may be from the server's clock, either way. */
export const MAILBOX_AUTH_WINDOW_MS = 5 * 60_000;

export function newQueueIds(random: (n: number) => Uint8Array = randomBytes): { receiveId: string; sendId: string } {
  const receiveId = Buffer.from(random(QUEUE_ID_BYTES)).toString('base64url');
  const sendId = Buffer.from(random(QUEUE_ID_BYTES)).toString('base64url');
  if (receiveId === sendId) throw new Error('random source returned the same bytes twice');
  return { receiveId, sendId };
}

export function newMessageId(random: (n: number) => Uint8Array = randomBytes): string {
  return Buffer.from(random(MESSAGE_ID_BYTES)).toString('base64url');
}

export function sha256B64u(body: Uint8Array): string {
  return createHash('sha256').update(body).digest('base64url');
}

// Blocks are padded by the sender and unpadded by the receiver; the rules live in the schemas
// package so the sdk (browsers) and the server share one implementation.
export { mailboxMaxBlobBytes as maxBlobBytes, padMailboxBlock as padBlock, unpadMailboxBlock as unpadBlock } from '@parley/schemas';

export type QueueAuthCheck =
  | { ok: true; ts: number; nonce: string; sig: string }
  | { ok: false; reason: 'malformed' | 'stale' | 'bad_signature' };

export interface QueueRequest {
  method: string;
  /** The request path, e.g. `/mailbox/v1/queues/<receiveId>/messages`, without the query. */
  path: string;
  authorization: string | undefined;
  body: Uint8Array;
}

/**
 * Checks a receive/acknowledge/delete request against the queue key. `stale` when the
 * timestamp is outside ±MAILBOX_AUTH_WINDOW_MS of `now` (a replay after the window, or a
 * clock far off); replays inside the window are the caller's to refuse by remembering
 * signatures for the window. Never throws on hostile input.
 */
export function checkQueueRequest(req: QueueRequest, queueKey: string, now: number, windowMs = MAILBOX_AUTH_WINDOW_MS): QueueAuthCheck {
  const auth = parseQueueAuth(req.authorization);
  if (!auth) return { ok: false, reason: 'malformed' };
  if (Math.abs(auth.ts - now) > windowMs) return { ok: false, reason: 'stale' };
  let key: ReturnType<typeof publicKeyFromB64u>;
  try {
    key = publicKeyFromB64u(queueKey);
  } catch {
    return { ok: false, reason: 'bad_signature' };
  }
  const sig = Buffer.from(auth.sig, 'base64url');
  let input: string;
  try {
    input = mailboxSigningInput(req.method, req.path, auth.ts, auth.nonce, sha256B64u(req.body));
  } catch {
    return { ok: false, reason: 'malformed' };
  }
  if (!verifyBytes(new Uint8Array(sig), new TextEncoder().encode(input), key)) return { ok: false, reason: 'bad_signature' };
  return { ok: true, ...auth };
}
