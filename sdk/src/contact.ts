import { xchacha20poly1305 } from '@noble/ciphers/chacha.js';
import { x25519 } from '@noble/curves/ed25519.js';
import { hkdf } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { isQueueId, padMailboxBlock, parseUserId, unpadMailboxBlock } from '@parley/schemas';
import { fromB64u, toB64u } from './crypto/encoding.js';
import type { MailboxClient, MailboxQueue } from './mailbox.js';

/**
 * Contact links (docs/protocol.md): a link names a mailbox queue — its server, its send ID and
 * an X25519 public key made for the link — never a user. Whoever opens it seals a contact
 * request (their user ID and a note) to that key and deposits it in the queue; only the link's
 * owner, who keeps the receive ID, the queue key and the X25519 secret key, can read it.
 *
 * Sealed box: a fresh X25519 key pair per request, HKDF-SHA256 over the shared secret (salt:
 * both public keys) gives an XChaCha20-Poly1305 key; the plaintext is padded to a fixed size
 * first, so every request is the same length before the mailbox pads it again.
 */

export const CONTACT_LINK_VERSION = 1;
/** Longest encoded link accepted (a hostile link cannot make the client parse megabytes). */
export const MAX_CONTACT_LINK_CHARS = 1024;
export const MAX_CONTACT_NOTE_CHARS = 300;
export const MAX_CONTACT_NAME_CHARS = 64;
/**
 * Every request's plaintext is padded to this many bytes before sealing; sealed, a request is
 * 969 bytes, which fits the smallest block a mailbox may publish (1024).
 */
export const CONTACT_PLAINTEXT_BYTES = 896;
const SEAL_VERSION = 1;
const INFO = new TextEncoder().encode('parley-contact-request-v1');
const SEALED_BYTES = 1 + 32 + 24 + CONTACT_PLAINTEXT_BYTES + 16;

export interface ContactLink {
  /** Base URL of the mailbox server holding the queue, e.g. `https://example.org`. */
  server: string;
  sendId: string;
  /** The link's X25519 public key, base64url. */
  publicKey: string;
}

export interface ContactRequest {
  /** The sender's user ID as they state it (not proven: accepting invites exactly this ID). */
  userId: string;
  note: string;
  displayName?: string;
  /** When the sender sealed it (their clock, ms). */
  ts: number;
}

export class ContactLinkError extends Error {
  override name = 'ContactLinkError';
}

function checkServer(server: unknown): string {
  if (typeof server !== 'string' || server.length > 255) throw new ContactLinkError('the link names no server');
  let url: URL;
  try {
    url = new URL(server);
  } catch {
    throw new ContactLinkError('the link’s server is not a URL');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new ContactLinkError('the link’s server must be an http(s) URL');
  if (url.username || url.password || url.search || url.hash || (url.pathname !== '/' && url.pathname !== '')) {
    throw new ContactLinkError('the link’s server must be a bare origin');
  }
  return url.origin;
}

function checkPublicKey(key: unknown): string {
  if (typeof key !== 'string' || !/^[A-Za-z0-9_-]{43}$/.test(key)) throw new ContactLinkError('the link’s key is not a 32-byte key');
  return key;
}

/** The link's payload: unpadded base64url of `{"v":1,"s":server,"q":sendId,"k":publicKey}`. */
export function encodeContactLink(link: ContactLink): string {
  const payload = { v: CONTACT_LINK_VERSION, s: checkServer(link.server), q: link.sendId, k: checkPublicKey(link.publicKey) };
  if (!isQueueId(payload.q)) throw new ContactLinkError('the link’s send ID is not a queue ID');
  return toB64u(new TextEncoder().encode(JSON.stringify(payload)));
}

/** Reads a payload made by `encodeContactLink`; a ContactLinkError saying what is wrong otherwise. */
export function decodeContactLink(encoded: string): ContactLink {
  if (typeof encoded !== 'string' || encoded.length === 0) throw new ContactLinkError('the link is empty');
  if (encoded.length > MAX_CONTACT_LINK_CHARS) throw new ContactLinkError('the link is too long');
  let payload: { v?: unknown; s?: unknown; q?: unknown; k?: unknown };
  try {
    payload = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(fromB64u(encoded, 'link')));
  } catch {
    throw new ContactLinkError('the link is damaged (not a Parley contact link)');
  }
  if (payload === null || typeof payload !== 'object') throw new ContactLinkError('the link is damaged (not a Parley contact link)');
  if (payload.v !== CONTACT_LINK_VERSION)
    throw new ContactLinkError(`the link has version ${String(payload.v)}; this client reads version 1`);
  if (!isQueueId(payload.q)) throw new ContactLinkError('the link’s send ID is not a queue ID');
  return { server: checkServer(payload.s), sendId: payload.q, publicKey: checkPublicKey(payload.k) };
}

/** A shareable URL: the web client at `clientOrigin`, the payload in the fragment (never sent to a server). */
export function contactLinkUrl(clientOrigin: string, link: ContactLink): string {
  return `${clientOrigin.replace(/\/+$/, '')}/contact#${encodeContactLink(link)}`;
}

/** The payload from a full link URL, a `#…` fragment or the bare payload. */
export function contactLinkFromText(text: string): ContactLink {
  const trimmed = String(text ?? '').trim();
  const at = trimmed.indexOf('#');
  return decodeContactLink(at >= 0 ? trimmed.slice(at + 1) : trimmed);
}

export function newContactKeyPair(): { secretKey: Uint8Array; publicKey: string } {
  const secretKey = x25519.utils.randomSecretKey();
  return { secretKey, publicKey: toB64u(x25519.getPublicKey(secretKey)) };
}

function sealKey(shared: Uint8Array, ephemeral: Uint8Array, recipient: Uint8Array): Uint8Array {
  const salt = new Uint8Array(64);
  salt.set(ephemeral, 0);
  salt.set(recipient, 32);
  return hkdf(sha256, shared, salt, INFO, 32);
}

/** Seals a contact request to the link's public key: `1 ‖ ephemeral public key ‖ nonce ‖ ciphertext`. */
export function sealContactRequest(link: ContactLink, request: Omit<ContactRequest, 'ts'> & { ts?: number }): Uint8Array {
  if (!parseUserId(request.userId)) throw new ContactLinkError('userId must be a user ID like @name:example.org');
  const note = String(request.note ?? '');
  if (note.length > MAX_CONTACT_NOTE_CHARS) throw new ContactLinkError(`the note may be at most ${MAX_CONTACT_NOTE_CHARS} characters`);
  const displayName = request.displayName?.slice(0, MAX_CONTACT_NAME_CHARS);
  const body = { user_id: request.userId, note, ts: request.ts ?? Date.now(), ...(displayName ? { displayname: displayName } : {}) };
  const encoded = new TextEncoder().encode(JSON.stringify(body));
  if (encoded.length > CONTACT_PLAINTEXT_BYTES - 4) throw new ContactLinkError('the note is too long: shorten it');
  const plaintext = padMailboxBlock(encoded, CONTACT_PLAINTEXT_BYTES);
  const recipient = fromB64u(checkPublicKey(link.publicKey), 'publicKey');
  const eph = x25519.utils.randomSecretKey();
  const ephPublic = x25519.getPublicKey(eph);
  const key = sealKey(x25519.getSharedSecret(eph, recipient), ephPublic, recipient);
  const nonce = globalThis.crypto.getRandomValues(new Uint8Array(24));
  const ciphertext = xchacha20poly1305(key, nonce, INFO).encrypt(plaintext);
  const out = new Uint8Array(1 + 32 + 24 + ciphertext.length);
  out[0] = SEAL_VERSION;
  out.set(ephPublic, 1);
  out.set(nonce, 33);
  out.set(ciphertext, 57);
  return out;
}

/** Opens a sealed request with the link's secret key; null for anything that is not one (forged, damaged, malformed). */
export function openContactRequest(secretKey: Uint8Array, sealed: Uint8Array): ContactRequest | null {
  if (!(sealed instanceof Uint8Array) || sealed.length !== SEALED_BYTES || sealed[0] !== SEAL_VERSION) return null;
  try {
    const ephPublic = sealed.subarray(1, 33);
    const recipient = x25519.getPublicKey(secretKey);
    const key = sealKey(x25519.getSharedSecret(secretKey, ephPublic), ephPublic, recipient);
    const plaintext = xchacha20poly1305(key, sealed.subarray(33, 57), INFO).decrypt(sealed.subarray(57));
    const inner = unpadMailboxBlock(plaintext, CONTACT_PLAINTEXT_BYTES);
    if (!inner) return null;
    const body = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(inner)) as Record<string, unknown>;
    if (!parseUserId(body.user_id) || typeof body.note !== 'string' || body.note.length > MAX_CONTACT_NOTE_CHARS) return null;
    if (!Number.isSafeInteger(body.ts)) return null;
    const name = typeof body.displayname === 'string' ? body.displayname.slice(0, MAX_CONTACT_NAME_CHARS) : undefined;
    return { userId: body.user_id as string, note: body.note, ts: body.ts as number, ...(name ? { displayName: name } : {}) };
  } catch {
    return null;
  }
}

/** What a link's owner keeps (locally, never on a server): the queue and the link's secret key. */
export interface OwnedContactLink {
  id: string;
  label: string;
  createdTs: number;
  link: ContactLink;
  queue: { baseUrl: string; receiveId: string; sendId: string; secretKey: string };
  /** The link's X25519 secret key, base64url. */
  linkSecretKey: string;
}

/** Makes a link: a fresh queue on the mailbox server at `server` and a fresh X25519 key pair. */
export async function createContactLink(mailbox: MailboxClient, server: string, label = ''): Promise<OwnedContactLink> {
  const queue = await mailbox.createQueue(server);
  const keys = newContactKeyPair();
  const link: ContactLink = { server: queue.baseUrl, sendId: queue.sendId, publicKey: keys.publicKey };
  return {
    id: queue.receiveId.slice(0, 12),
    label: label.slice(0, 80),
    createdTs: Date.now(),
    link,
    queue: { baseUrl: queue.baseUrl, receiveId: queue.receiveId, sendId: queue.sendId, secretKey: toB64u(queue.secretKey) },
    linkSecretKey: toB64u(keys.secretKey),
  };
}

export function ownedQueue(owned: OwnedContactLink): MailboxQueue {
  return { ...owned.queue, secretKey: fromB64u(owned.queue.secretKey, 'queue.secretKey') };
}

/** Seals and deposits a request through a link; needs no account on the link's server. */
export async function sendContactRequest(mailbox: MailboxClient, link: ContactLink, request: Omit<ContactRequest, 'ts'>): Promise<string> {
  return mailbox.send(link.server, link.sendId, sealContactRequest(link, request));
}

export interface ReceivedContactRequest extends ContactRequest {
  msgId: string;
  linkId: string;
}

/**
 * Reads the requests waiting in a link's queue (one batch). Blocks that do not open (bad
 * padding, forged, not a request) are acknowledged away at once, so junk cannot fill the queue;
 * requests stay until the owner accepts or ignores them (`dismissContactRequest`).
 */
export async function fetchContactRequests(mailbox: MailboxClient, owned: OwnedContactLink): Promise<ReceivedContactRequest[]> {
  const queue = ownedQueue(owned);
  const { blobs, refused } = await mailbox.receive(queue);
  const secret = fromB64u(owned.linkSecretKey, 'linkSecretKey');
  const out: ReceivedContactRequest[] = [];
  const junk = [...refused];
  for (const blob of blobs) {
    const request = openContactRequest(secret, blob.data);
    if (request) out.push({ ...request, msgId: blob.msgId, linkId: owned.id });
    else junk.push(blob.msgId);
  }
  for (const msgId of junk) await mailbox.ack(queue, msgId).catch(() => {});
  return out;
}

/** Acknowledges a request (after Accept or Ignore): the mailbox server deletes it. */
export async function dismissContactRequest(mailbox: MailboxClient, owned: OwnedContactLink, msgId: string): Promise<void> {
  await mailbox.ack(ownedQueue(owned), msgId);
}

/** Revokes a link: deletes its queue, so its send ID stops working. */
export async function revokeContactLink(mailbox: MailboxClient, owned: OwnedContactLink): Promise<void> {
  await mailbox.deleteQueue(ownedQueue(owned));
}
