import { xchacha20poly1305 } from '@noble/ciphers/chacha.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { equalBytes, fromB64u, toB64u } from './encoding.js';

/**
 * Attachments of encrypted rooms (docs/protocol.md): encrypted on the device under a fresh random
 * key, uploaded as ciphertext; the key, nonce and ciphertext hash travel inside the
 * encrypted event, so the media store never holds anything readable.
 */
export const ATTACHMENT_ALGORITHM = 'xchacha20poly1305.v1';

export interface AttachmentKey {
  algorithm: typeof ATTACHMENT_ALGORITHM;
  key: string;
  nonce: string;
  /** SHA-256 of the ciphertext, checked before decrypting. */
  sha256: string;
  /** Plaintext size in bytes. */
  size: number;
}

export function encryptAttachment(
  plaintext: Uint8Array,
  random: (n: number) => Uint8Array = (n) => globalThis.crypto.getRandomValues(new Uint8Array(n)),
): { ciphertext: Uint8Array; info: AttachmentKey } {
  if (!(plaintext instanceof Uint8Array)) throw new TypeError('plaintext: expected a Uint8Array');
  const key = random(32);
  const nonce = random(24);
  const ciphertext = xchacha20poly1305(key, nonce).encrypt(plaintext);
  return {
    ciphertext,
    info: {
      algorithm: ATTACHMENT_ALGORITHM,
      key: toB64u(key),
      nonce: toB64u(nonce),
      sha256: toB64u(sha256(ciphertext)),
      size: plaintext.length,
    },
  };
}

export class AttachmentError extends Error {
  override readonly name = 'AttachmentError';
}

/** Throws AttachmentError when the hash, the tag or the size does not match. */
export function decryptAttachment(ciphertext: Uint8Array, info: AttachmentKey): Uint8Array {
  if (info?.algorithm !== ATTACHMENT_ALGORITHM) throw new AttachmentError(`attachment: unknown algorithm ${String(info?.algorithm)}`);
  if (!equalBytes(sha256(ciphertext), fromB64u(info.sha256, 'sha256'))) throw new AttachmentError('attachment: ciphertext hash mismatch');
  let plaintext: Uint8Array;
  try {
    plaintext = xchacha20poly1305(fromB64u(info.key, 'key'), fromB64u(info.nonce, 'nonce')).decrypt(ciphertext);
  } catch {
    throw new AttachmentError('attachment: does not decrypt with its key');
  }
  if (plaintext.length !== info.size) throw new AttachmentError('attachment: size mismatch');
  return plaintext;
}
