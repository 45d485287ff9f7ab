import { canonicalJson, sha256B64u } from '../canonical/index.js';
import { redact } from './redact.js';
import type { HashedEvent, UnsignedEvent } from './types.js';

/**
 * Content hash (`hashes.sha256`): SHA-256 over the canonical event without `signatures`,
 * `unsigned` and `hashes` (docs/protocol.md). It covers the content that redaction removes, and
 * survives redaction inside `hashes`, so a redacted event still commits to what it said.
 */
export function contentHash(event: UnsignedEvent): string {
  const { signatures: _s, unsigned: _u, hashes: _h, ...covered } = event;
  return sha256B64u(canonicalJson(covered, 'event'));
}

/**
 * The bytes an origin signs and the reference hash covers: the canonical redacted event
 * without `signatures` and `unsigned` (docs/protocol.md). Signing the redacted form, as Matrix
 * does, is what lets a redacted event keep a valid signature.
 */
export function signingPayload(event: HashedEvent): string {
  const { signatures: _s, unsigned: _u, ...signed } = redact(event);
  return canonicalJson(signed, 'event');
}

/** Reference hash: SHA-256 of the signing payload, unpadded base64url. */
export function referenceHash(event: HashedEvent): string {
  return sha256B64u(signingPayload(event));
}

/** `$` + reference hash (docs/protocol.md): anyone recomputes it, so it is not an event member. */
export function eventId(event: HashedEvent): string {
  return '$' + referenceHash(event);
}
