import { check, RoomEvent } from '@parley/schemas';
import { sha256B64u } from '../canonical/index.js';
import type { KeyRing } from '../keys/signing-key.js';
import type { BytesVerifier } from '../keys/verify-pool.js';
import { contentHash, signingPayload } from './hashes.js';
import { userServer } from './ids.js';
import { isRedacted } from './redact.js';
import { checkServerSignature, checkServerSignatureAsync } from './signatures.js';
import { checkEventSize } from './size.js';

export type EventFailureKind = 'malformed' | 'size' | 'signature' | 'content_hash';
export type VerifyEventResult = { ok: true; eventId: string; redacted: boolean } | { ok: false; kind: EventFailureKind; reason: string };

export interface VerifyEventOptions {
  /**
   * Accept an event whose content hash does not match when it equals its own redaction: the
   * copy a server keeps after a redaction. Off by default, because stripping content from an
   * unredacted event gives the same shape; the caller knows whether it expects one.
   */
  allowRedacted?: boolean;
  /**
   * Event IDs whose signed form this server already verified or signed itself. The event ID
   * is the hash of exactly the bytes the origin signs, so for these the signature check is
   * skipped (the costly part); origin, content hash and shape are still checked.
   */
  trusted?: { has(eventId: string): boolean };
}

/** What verification derives from an event once: the signed bytes and the event ID. */
export interface PreparedEvent {
  payload: Buffer;
  eventId: string;
}

/** Checks shape and size and derives the payload; a failure says why. Never throws. */
export function prepareEvent(
  event: unknown,
): { ok: true; event: RoomEvent; prepared: PreparedEvent } | { ok: false; kind: EventFailureKind; reason: string } {
  try {
    const shape = check(RoomEvent, event);
    if (!shape.ok) return { ok: false, kind: 'malformed', reason: `event: ${shape.message}` };
    return prepareCheckedEvent(shape.value);
  } catch (err) {
    return { ok: false, kind: 'malformed', reason: (err as Error).message };
  }
}

/**
 * prepareEvent for an event that passed check(RoomEvent) and has not changed since (e.g. one
 * of thousands parsed and checked from a host's answer): the checks after the shape, without
 * validating the shape a second time. Never throws.
 */
export function prepareCheckedEvent(
  event: RoomEvent,
): { ok: true; event: RoomEvent; prepared: PreparedEvent } | { ok: false; kind: EventFailureKind; reason: string } {
  try {
    if (userServer(event.sender) === null) return { ok: false, kind: 'malformed', reason: 'event: sender is not a user ID' };
    const size = checkEventSize(event);
    if (!size.ok) return { ok: false, kind: size.tooLarge ? 'size' : 'malformed', reason: size.reason };
    const payload = Buffer.from(signingPayload(event));
    return { ok: true, event, prepared: { payload, eventId: '$' + sha256B64u(payload) } };
  } catch (err) {
    return { ok: false, kind: 'malformed', reason: (err as Error).message };
  }
}

/**
 * Authorship checks on a prepared event (docs/protocol.md): the origin is the sender's server and
 * signed the redacted form, and the content hash matches (or the event is a redacted copy
 * and the caller allows those). Never throws.
 */
export function verifyPreparedEvent(
  event: RoomEvent,
  prepared: PreparedEvent,
  keyRing: KeyRing,
  options: VerifyEventOptions = {},
): VerifyEventResult {
  try {
    const origin = originProblem(event);
    if (origin) return origin;
    if (options.trusted?.has(prepared.eventId) !== true) {
      const signature = checkServerSignature(event.signatures, event.origin, prepared.payload, keyRing);
      if (!signature.ok) return { ok: false, kind: 'signature', reason: signature.reason };
    }
    return contentVerdict(event, prepared, options);
  } catch (err) {
    return { ok: false, kind: 'malformed', reason: (err as Error).message };
  }
}

/**
 * verifyPreparedEvent with the origin's signature checked by `verifier`
 * (checkServerSignatureAsync): same checks, same verdicts. Never rejects.
 */
export async function verifyPreparedEventAsync(
  event: RoomEvent,
  prepared: PreparedEvent,
  keyRing: KeyRing,
  options: VerifyEventOptions = {},
  verifier?: BytesVerifier,
): Promise<VerifyEventResult> {
  try {
    const origin = originProblem(event);
    if (origin) return origin;
    // Judged before the signature is (the loop's work while the pool checks it), reported after it.
    const content = contentVerdict(event, prepared, options);
    if (options.trusted?.has(prepared.eventId) !== true) {
      const signature = await checkServerSignatureAsync(event.signatures, event.origin, prepared.payload, keyRing, verifier);
      if (!signature.ok) return { ok: false, kind: 'signature', reason: signature.reason };
    }
    return content;
  } catch (err) {
    return { ok: false, kind: 'malformed', reason: (err as Error).message };
  }
}

/** An origin may only vouch for its own users. */
function originProblem(event: RoomEvent): VerifyEventResult | null {
  if (event.origin !== userServer(event.sender)) {
    return { ok: false, kind: 'signature', reason: `origin ${event.origin} is not the server of sender ${event.sender}` };
  }
  return null;
}

/** The content hash matches, or the event is a redacted copy and the caller allows those. May throw. */
function contentVerdict(event: RoomEvent, prepared: PreparedEvent, options: VerifyEventOptions): VerifyEventResult {
  if (contentHash(event) === event.hashes.sha256) return { ok: true, eventId: prepared.eventId, redacted: false };
  if (options.allowRedacted === true && isRedacted(event)) return { ok: true, eventId: prepared.eventId, redacted: true };
  return { ok: false, kind: 'content_hash', reason: 'content hash mismatch' };
}

/** Verifies an event received from anywhere. Returns a failure object, never throws. */
export function verifyEvent(event: unknown, keyRing: KeyRing, options: VerifyEventOptions = {}): VerifyEventResult {
  const prepared = prepareEvent(event);
  if (!prepared.ok) return prepared;
  if (typeof keyRing !== 'function') return { ok: false, kind: 'signature', reason: 'keyRing: expected a function' };
  return verifyPreparedEvent(prepared.event, prepared.prepared, keyRing, options ?? {});
}

/** verifyEvent with the origin's signature checked on libuv's thread pool (verifyPreparedEventAsync). Never rejects. */
export async function verifyEventAsync(event: unknown, keyRing: KeyRing, options: VerifyEventOptions = {}): Promise<VerifyEventResult> {
  const prepared = prepareEvent(event);
  if (!prepared.ok) return prepared;
  if (typeof keyRing !== 'function') return { ok: false, kind: 'signature', reason: 'keyRing: expected a function' };
  return verifyPreparedEventAsync(prepared.event, prepared.prepared, keyRing, options ?? {});
}
