import { createHash } from 'node:crypto';

/**
 * SHA-256 as unpadded base64url (RFC 4648 §5 without the `=` padding of §3.2), the form
 * of every Parley hash and event ID (docs/protocol.md). Strings are hashed as UTF-8.
 */
export function sha256B64u(data: Uint8Array | string): string {
  if (typeof data !== 'string' && !(data instanceof Uint8Array)) {
    throw new TypeError('data: expected a Uint8Array or a string');
  }
  // Node's 'base64url' digest is already unpadded.
  return createHash('sha256').update(data).digest('base64url');
}
