import { sha256 } from '@noble/hashes/sha2.js';
import {
  type CreateQueueResponse,
  formatQueueAuth,
  isMailboxMessageId,
  isQueueId,
  type MailboxMessagesResponse,
  mailboxSigningInput,
  padMailboxBlock,
  type SendBlobResponse,
  unpadMailboxBlock,
} from '@parley/schemas';
import { getPublicKey, signEd25519 } from './crypto/ed25519.js';
import { fromB64u, toB64u } from './crypto/encoding.js';
import { errorFromResponse, isParleyApiError, malformedResponse, networkError } from './errors.js';

/**
 * Mailbox queues (docs/protocol.md) on any Parley server, without an account: a queue is its
 * server, its receive ID and its Ed25519 queue key (kept by the receiver), and its send ID
 * (given to senders, e.g. in a contact link). Blobs are padded here to the server's published
 * block size before they leave and unpadded on receipt, so the server stores only blocks of
 * one size. Works in browsers and Node (fetch and crypto.getRandomValues).
 */

export interface MailboxQueue {
  /** Base URL of the mailbox server, e.g. `https://example.org`. */
  baseUrl: string;
  receiveId: string;
  sendId: string;
  /** The 32-byte Ed25519 secret key; keep it with the device's secrets, never send it. */
  secretKey: Uint8Array;
}

export interface ReceivedBlob {
  msgId: string;
  ts: number;
  data: Uint8Array;
}

/** What a mailbox server publishes (`GET /mailbox/v1/limits`). */
export interface MailboxLimits {
  block_bytes: number;
  max_blob_bytes: number;
  queue_quota: number;
  ttl_ms: number;
}

/** Blocks larger than this are refused whatever a server publishes (a hostile server cannot make us allocate more). */
export const MAX_MAILBOX_BLOCK_BYTES = 1024 * 1024;

export interface MailboxClientOptions {
  fetch?: typeof fetch;
  /** Clock for request timestamps (tests move it); defaults to Date.now. */
  now?: () => number;
}

const enc = encodeURIComponent;

export class MailboxClient {
  readonly #fetch: typeof fetch;
  readonly #now: () => number;
  readonly #limits = new Map<string, Promise<MailboxLimits>>();

  constructor(opts: MailboxClientOptions = {}) {
    this.#fetch = opts.fetch ?? ((...args) => globalThis.fetch(...args));
    this.#now = opts.now ?? Date.now;
  }

  /** Creates a queue with a fresh queue key on the mailbox server at `baseUrl`. */
  async createQueue(baseUrl: string): Promise<MailboxQueue & { limits: CreateQueueResponse['limits'] }> {
    if (typeof baseUrl !== 'string' || !/^https?:\/\//.test(baseUrl)) throw new TypeError('baseUrl must be an http(s) URL');
    const base = baseUrl.replace(/\/+$/, '');
    const secretKey = globalThis.crypto.getRandomValues(new Uint8Array(32));
    const res = await this.#request('POST', `${base}/mailbox/v1/queues`, {
      body: JSON.stringify({ queue_key: toB64u(getPublicKey(secretKey)) }),
      headers: { 'content-type': 'application/json' },
    });
    const body = (await res.json()) as CreateQueueResponse;
    if (!isQueueId(body.receive_id) || !isQueueId(body.send_id)) throw malformedResponse(res.status, 'queue IDs missing from the answer');
    checkLimits(body.limits, res.status);
    this.#limits.set(base, Promise.resolve(body.limits));
    return { baseUrl: base, receiveId: body.receive_id, sendId: body.send_id, secretKey, limits: body.limits };
  }

  /** The limits the mailbox server at `baseUrl` publishes (asked once per client and server). */
  limits(baseUrl: string): Promise<MailboxLimits> {
    const base = baseUrl.replace(/\/+$/, '');
    let known = this.#limits.get(base);
    if (!known) {
      known = (async () => {
        const res = await this.#request('GET', `${base}/mailbox/v1/limits`, { headers: {} });
        const body = (await res.json()) as MailboxLimits & { enabled?: boolean };
        checkLimits(body, res.status);
        return { block_bytes: body.block_bytes, max_blob_bytes: body.max_blob_bytes, queue_quota: body.queue_quota, ttl_ms: body.ttl_ms };
      })();
      this.#limits.set(base, known);
      known.catch(() => this.#limits.delete(base));
    }
    return known;
  }

  /**
   * Deposits `data` in the queue `sendId` names; needs nothing but the send ID. `data` is padded
   * to the server's block size first (a RangeError when it does not fit `max_blob_bytes`).
   */
  async send(baseUrl: string, sendId: string, data: Uint8Array): Promise<string> {
    if (!isQueueId(sendId)) throw new TypeError('sendId must be a queue ID');
    if (!(data instanceof Uint8Array)) throw new TypeError('data must be a Uint8Array');
    const base = baseUrl.replace(/\/+$/, '');
    const put = async () => {
      const { block_bytes } = await this.limits(base);
      const block = padMailboxBlock(data, block_bytes) as Uint8Array<ArrayBuffer>;
      return this.#request('PUT', `${base}/mailbox/v1/send/${enc(sendId)}`, {
        body: block,
        headers: { 'content-type': 'application/octet-stream' },
      });
    };
    let res: Response;
    try {
      res = await put();
    } catch (err) {
      // The server's block size changed since we asked (a restart with new settings): ask again, once.
      if (!(isParleyApiError(err) && (err.field === 'body' || err.status === 413))) throw err;
      this.#limits.delete(base);
      res = await put();
    }
    return ((await res.json()) as SendBlobResponse).msg_id;
  }

  /**
   * The oldest waiting blobs (a batch), unpadded; acknowledge each once it is safely handled.
   * Blocks with bad padding (wrong size, a length that does not fit, non-zero padding) are
   * refused: listed in `refused` by message ID, for the caller to acknowledge away.
   */
  async receive(queue: MailboxQueue): Promise<{ blobs: ReceivedBlob[]; refused: string[]; more: boolean }> {
    const { block_bytes } = await this.limits(queue.baseUrl);
    const path = `/mailbox/v1/queues/${enc(queue.receiveId)}/messages`;
    const res = await this.#signed(queue, 'GET', path);
    const body = (await res.json()) as MailboxMessagesResponse;
    if (!Array.isArray(body.messages)) throw malformedResponse(res.status, 'messages missing from the answer');
    const blobs: ReceivedBlob[] = [];
    const refused: string[] = [];
    for (const m of body.messages) {
      if (!isMailboxMessageId(m.msg_id)) throw malformedResponse(res.status, 'a message has no valid msg_id');
      const data = unpadMailboxBlock(fromB64u(m.body, 'messages[].body'), block_bytes);
      if (data) blobs.push({ msgId: m.msg_id, ts: m.ts, data: new Uint8Array(data) });
      else refused.push(m.msg_id);
    }
    return { blobs, refused, more: body.more === true };
  }

  /** Deletes one blob from the queue after it was handled. */
  async ack(queue: MailboxQueue, msgId: string): Promise<void> {
    if (!isMailboxMessageId(msgId)) throw new TypeError('msgId must be a message ID');
    await this.#signed(queue, 'DELETE', `/mailbox/v1/queues/${enc(queue.receiveId)}/messages/${enc(msgId)}`);
  }

  /** Deletes the queue and whatever it holds; its send ID stops working. */
  async deleteQueue(queue: MailboxQueue): Promise<void> {
    await this.#signed(queue, 'DELETE', `/mailbox/v1/queues/${enc(queue.receiveId)}`);
  }

  /** The Authorization header for one request; exported for tests of the server's checks. */
  signRequest(queue: MailboxQueue, method: string, path: string, ts = this.#now()): string {
    const nonce = toB64u(globalThis.crypto.getRandomValues(new Uint8Array(16)));
    const input = mailboxSigningInput(method, path, ts, nonce, toB64u(sha256(new Uint8Array(0))));
    const sig = toB64u(signEd25519(new TextEncoder().encode(input), queue.secretKey));
    return formatQueueAuth({ ts, nonce, sig });
  }

  async #signed(queue: MailboxQueue, method: string, path: string): Promise<Response> {
    if (!isQueueId(queue?.receiveId)) throw new TypeError('queue.receiveId must be a queue ID');
    return this.#request(method, `${queue.baseUrl}${path}`, { headers: { authorization: this.signRequest(queue, method, path) } });
  }

  async #request(
    method: string,
    url: string,
    init: { body?: string | Uint8Array<ArrayBuffer>; headers: Record<string, string> },
  ): Promise<Response> {
    let res: Response;
    try {
      res = await this.#fetch(url, { method, ...init });
    } catch (err) {
      throw networkError(method, url, err);
    }
    if (!res.ok) throw errorFromResponse(res.status, res.headers, await res.text());
    return res;
  }
}

function checkLimits(limits: MailboxLimits | undefined, status: number): void {
  const b = limits?.block_bytes;
  if (!Number.isSafeInteger(b) || (b as number) <= 4 || (b as number) > MAX_MAILBOX_BLOCK_BYTES) {
    throw malformedResponse(status, 'the mailbox server published no usable block_bytes');
  }
}
