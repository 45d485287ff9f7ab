import { chacha20poly1305 } from '@noble/ciphers/chacha.js';
import { x25519 } from '@noble/curves/ed25519.js';
import { hkdf } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { type DeviceMailbox, mailboxMaxBlobBytes } from '@parley/schemas';
import { MailboxClient, type MailboxQueue } from '../mailbox.js';
import { concatBytes, fromB64u, fromUtf8, toB64u, utf8 } from './encoding.js';
import { checkMailbox } from './identity.js';
import type { CryptoStore } from './store.js';

/**
 * The mailbox side of an E2eSession (docs/protocol.md "Mailbox delivery of Welcomes"): one
 * queue per device, created once and kept in the CryptoStore, published in the device's entry
 * of the signed device list; deposits to other devices' queues, sealed to their `seal_key`
 * so the mailbox server holds opaque blocks; and reading this device's queue.
 */

const QUEUE_KEY = 'mailbox/queue';
const SEEN_PREFIX = 'mailbox/seen/';
const SEAL_INFO = utf8('parley mailbox seal v1');
const ENVELOPE_VERSION = 1;
/** Batches read in one poll (each at most the server's batch size): a full queue cannot hold the session. */
const MAX_BATCHES_PER_POLL = 4;
/** Welcomes remembered as applied (by hash) so a second copy is not applied again. */
const MAX_SEEN = 500;
const REQUEST_TIMEOUT_MS = 10_000;
/** A deposit is `message ID (16) ‖ part (1) ‖ count (1) ‖ chunk of the sealed envelope`. */
const PART_ID_BYTES = 16;
const PART_HEADER_BYTES = PART_ID_BYTES + 2;
/** Blocks one deposit may take (4 × 16 KiB holds the largest inline Welcome, 40 KiB of base64url). */
export const MAX_PARTS = 4;
/** Incomplete multi-part deposits tracked in one read. */
const MAX_PARTIAL = 16;
/** How long the parts of an incomplete deposit wait for the rest before they are dropped. */
const PART_WAIT_MS = 3_600_000;
/** Envelope fields a deposit may carry. */
const MAX_TYPE_LENGTH = 64;

/** What one deposit carries once unsealed. */
export interface MailboxEnvelope {
  /** To-device type, e.g. `mls.welcome`. */
  type: string;
  /** Who says they sent it (unauthenticated: the content must prove itself, as a Welcome does). */
  sender: string;
  content: Record<string, unknown>;
}

/** What the handler says about one envelope: done (acknowledge it) or not yet (leave it in the queue). */
export type EnvelopeOutcome = 'done' | 'later';

interface StoredQueue {
  url: string;
  receiveId: string;
  sendId: string;
  secretKey: string;
  sealSecret: string;
}

export interface SessionMailboxOptions {
  /** Mailbox server base URL; default the homeserver's. `false`: no mailbox. */
  url: string | false;
  fetch?: typeof fetch;
  log: (message: string) => void;
}

export class SessionMailbox {
  readonly #client: MailboxClient;
  #queue: (MailboxQueue & { sealSecret: Uint8Array }) | null = null;
  #published: DeviceMailbox | undefined;
  #polling: Promise<number> | null = null;

  constructor(
    private readonly store: CryptoStore,
    private readonly options: SessionMailboxOptions,
  ) {
    const base = options.fetch ?? ((...args: Parameters<typeof fetch>) => globalThis.fetch(...args));
    // Every mailbox request is bounded in time: a silent mailbox server cannot hold the session.
    this.#client = new MailboxClient({ fetch: (input, init) => base(input, { ...init, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) }) });
  }

  /** The entry to publish in the device list (after `setup`). */
  get published(): DeviceMailbox | undefined {
    return this.#published;
  }

  /**
   * Loads this device's queue, or creates it once when the mailbox server says it offers
   * mailboxes. Never throws: without a queue the device simply publishes none.
   */
  async setup(): Promise<void> {
    const raw = await this.store.get(QUEUE_KEY);
    if (raw !== undefined) {
      const q = JSON.parse(fromUtf8(raw)) as StoredQueue;
      this.#use(q);
      return;
    }
    if (this.options.url === false) return;
    const url = this.options.url.replace(/\/+$/, '');
    try {
      const limits = await this.#client.limits(url);
      if ((limits as { enabled?: boolean }).enabled === false) return;
      const created = await this.#client.createQueue(url);
      const sealSecret = globalThis.crypto.getRandomValues(new Uint8Array(32));
      const q: StoredQueue = {
        url: created.baseUrl,
        receiveId: created.receiveId,
        sendId: created.sendId,
        secretKey: toB64u(created.secretKey),
        sealSecret: toB64u(sealSecret),
      };
      await this.store.put(QUEUE_KEY, utf8(JSON.stringify(q)));
      this.#use(q);
    } catch (err) {
      this.options.log(`mailbox queue not created: ${(err as Error).message}`);
    }
  }

  #use(q: StoredQueue): void {
    const sealSecret = fromB64u(q.sealSecret);
    this.#queue = { baseUrl: q.url, receiveId: q.receiveId, sendId: q.sendId, secretKey: fromB64u(q.secretKey), sealSecret };
    this.#published = checkMailbox({ url: q.url, send_id: q.sendId, seal_key: toB64u(x25519.getPublicKey(sealSecret)) });
  }

  /**
   * Seals `envelope` to the device's `seal_key` and deposits it in its queue: one block, or up
   * to MAX_PARTS blocks that share a random message ID. False (logged) when it needs more or
   * the mailbox server refuses it.
   */
  async deposit(target: DeviceMailbox, envelope: MailboxEnvelope): Promise<boolean> {
    try {
      const plain = utf8(JSON.stringify({ v: ENVELOPE_VERSION, ...envelope }));
      const sealed = seal(fromB64u(target.seal_key), plain);
      const { block_bytes } = await this.#client.limits(target.url);
      const room = mailboxMaxBlobBytes(block_bytes) - PART_HEADER_BYTES;
      const count = Math.ceil(sealed.length / room);
      if (room <= 0 || count > MAX_PARTS) {
        this.options.log(`mailbox deposit skipped: ${sealed.length} bytes need more than ${MAX_PARTS} ${block_bytes}-byte blocks`);
        return false;
      }
      const id = globalThis.crypto.getRandomValues(new Uint8Array(PART_ID_BYTES));
      for (let part = 0; part < count; part++) {
        const chunk = sealed.subarray(part * room, (part + 1) * room);
        await this.#client.send(target.url, target.send_id, concatBytes(id, Uint8Array.of(part, count), chunk));
      }
      this.options.log(`mailbox deposit: ${sealed.length} bytes sealed, ${count} ${block_bytes}-byte block(s)`);
      return true;
    } catch (err) {
      this.options.log(`mailbox deposit failed: ${(err as Error).message}`);
      return false;
    }
  }

  /**
   * Reads this device's queue (at most a few batches), reassembles deposits that came in parts,
   * and hands each envelope to `handle`; acknowledges what was handled and what cannot be
   * opened. Concurrent calls share one read. Returns the number of envelopes handled.
   */
  poll(handle: (envelope: MailboxEnvelope) => Promise<EnvelopeOutcome>): Promise<number> {
    if (this.#queue === null) return Promise.resolve(0);
    this.#polling ??= this.#poll(this.#queue, handle).finally(() => {
      this.#polling = null;
    });
    return this.#polling;
  }

  async #poll(queue: MailboxQueue & { sealSecret: Uint8Array }, handle: (e: MailboxEnvelope) => Promise<EnvelopeOutcome>): Promise<number> {
    let handled = 0;
    const left = new Set<string>();
    const partial = new Map<string, { count: number; chunks: Map<number, Uint8Array>; msgIds: string[]; oldest: number }>();
    const drop = async (msgIds: string[], why: string) => {
      for (const id of msgIds) await this.#client.ack(queue, id);
      this.options.log(`mailbox: ${msgIds.length} block(s) dropped (${why})`);
    };
    const deliver = async (sealed: Uint8Array, msgIds: string[]) => {
      const envelope = open(queue.sealSecret, sealed);
      if (envelope === null) return drop(msgIds, 'does not open');
      const outcome = await handle(envelope).catch(() => 'later' as const);
      if (outcome === 'later') {
        for (const id of msgIds) left.add(id);
        return;
      }
      for (const id of msgIds) await this.#client.ack(queue, id);
      handled++;
    };
    try {
      for (let batch = 0; batch < MAX_BATCHES_PER_POLL; batch++) {
        const { blobs, refused, more } = await this.#client.receive(queue);
        for (const id of refused) await this.#client.ack(queue, id);
        let fresh = 0;
        for (const blob of blobs) {
          if (left.has(blob.msgId)) continue;
          fresh++;
          const frame = parsePart(blob.data);
          if (frame === null) {
            await drop([blob.msgId], 'malformed');
          } else if (frame.count === 1) {
            await deliver(frame.chunk, [blob.msgId]);
          } else {
            left.add(blob.msgId); // held until its message is complete
            let entry = partial.get(frame.id);
            if (entry === undefined) {
              if (partial.size >= MAX_PARTIAL) continue; // read again next time
              entry = { count: frame.count, chunks: new Map(), msgIds: [], oldest: blob.ts };
              partial.set(frame.id, entry);
            }
            entry.msgIds.push(blob.msgId);
            entry.oldest = Math.min(entry.oldest, blob.ts);
            if (entry.count !== frame.count || entry.chunks.has(frame.part)) {
              partial.delete(frame.id);
              await drop(entry.msgIds, 'inconsistent parts');
              continue;
            }
            entry.chunks.set(frame.part, frame.chunk);
            if (entry.chunks.size === entry.count) {
              partial.delete(frame.id);
              for (const id of entry.msgIds) left.delete(id);
              const ordered = [...Array(entry.count).keys()].map((i) => entry.chunks.get(i) as Uint8Array);
              await deliver(concatBytes(...ordered), entry.msgIds);
            }
          }
        }
        if (!more || fresh === 0) break;
      }
      // Parts whose siblings never came (a sender that stopped midway): dropped after a while.
      for (const entry of partial.values()) {
        if (Date.now() - entry.oldest > PART_WAIT_MS) await drop(entry.msgIds, 'incomplete');
      }
    } catch (err) {
      this.options.log(`mailbox read failed: ${(err as Error).message}`);
    }
    return handled;
  }

  /** Resolves once a read in progress (if any) has finished. */
  async idle(): Promise<void> {
    await this.#polling?.catch(() => undefined);
  }

  /** Whether a Welcome with this text was applied already (by either path). */
  async seen(welcome: string): Promise<boolean> {
    return (await this.store.get(SEEN_PREFIX + toB64u(sha256(utf8(welcome))))) !== undefined;
  }

  async markSeen(welcome: string): Promise<void> {
    const keys = await this.store.list(SEEN_PREFIX);
    if (keys.length >= MAX_SEEN) for (const k of keys.slice(0, keys.length - MAX_SEEN + 1)) await this.store.delete(k);
    await this.store.put(SEEN_PREFIX + toB64u(sha256(utf8(welcome))), Uint8Array.of(1));
  }
}

/** One block of a deposit; null when malformed. */
function parsePart(block: Uint8Array): { id: string; part: number; count: number; chunk: Uint8Array } | null {
  if (block.length <= PART_HEADER_BYTES) return null;
  const part = block[PART_ID_BYTES] as number;
  const count = block[PART_ID_BYTES + 1] as number;
  if (count < 1 || count > MAX_PARTS || part >= count) return null;
  return { id: toB64u(block.subarray(0, PART_ID_BYTES)), part, count, chunk: block.subarray(PART_HEADER_BYTES) };
}

/** Sealed box: ephemeral X25519 to `publicKey`, HKDF-SHA256, ChaCha20-Poly1305 (fresh key per deposit). */
export function seal(publicKey: Uint8Array, plaintext: Uint8Array): Uint8Array {
  if (publicKey.length !== 32) throw new TypeError('seal_key: expected 32 bytes');
  const eph = globalThis.crypto.getRandomValues(new Uint8Array(32));
  const ephPublic = x25519.getPublicKey(eph);
  const key = hkdf(sha256, x25519.getSharedSecret(eph, publicKey), concatBytes(ephPublic, publicKey), SEAL_INFO, 32);
  return concatBytes(ephPublic, chacha20poly1305(key, new Uint8Array(12)).encrypt(plaintext));
}

/** Opens a sealed deposit; null when it is not for this key or not a well-formed envelope. */
export function open(secretKey: Uint8Array, sealed: Uint8Array): MailboxEnvelope | null {
  try {
    if (sealed.length < 32 + 16) return null;
    const ephPublic = sealed.subarray(0, 32);
    const publicKey = x25519.getPublicKey(secretKey);
    const key = hkdf(sha256, x25519.getSharedSecret(secretKey, ephPublic), concatBytes(ephPublic, publicKey), SEAL_INFO, 32);
    const v = JSON.parse(fromUtf8(chacha20poly1305(key, new Uint8Array(12)).decrypt(sealed.subarray(32)))) as Record<string, unknown>;
    if (v.v !== ENVELOPE_VERSION || typeof v.type !== 'string' || v.type.length > MAX_TYPE_LENGTH) return null;
    if (typeof v.sender !== 'string' || v.sender.length > 255) return null;
    if (typeof v.content !== 'object' || v.content === null || Array.isArray(v.content)) return null;
    return { type: v.type, sender: v.sender, content: v.content as Record<string, unknown> };
  } catch {
    return null;
  }
}
