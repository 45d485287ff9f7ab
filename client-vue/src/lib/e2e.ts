import type { ClientEvent } from '@parley/schemas';
import type { DecryptFailureReason } from '@parley/sdk/crypto';
import { applyRelation, isRedacted } from './timeline.js';

/**
 * Pure end-to-end encryption helpers for the web client: what each decryption failure means
 * in words, the timeline as this device reads it (room.encrypted events replaced by their
 * decrypted content, encrypted edits and reactions applied to their targets), and search over
 * what the device has decrypted. No crypto here: the E2eSession does that (stores/e2e.ts).
 */

export type DecryptView =
  | { state: 'pending' }
  | { state: 'ok'; content: Record<string, unknown>; sender: { userId: string; deviceId: string }; verified: boolean }
  | { state: 'failed'; reason: DecryptFailureReason; retryable: boolean; detail?: string | undefined };

export interface FailureText {
  /** One sentence: what happened. */
  title: string;
  /** What the person can expect or do. */
  hint: string;
  /** Label of the button that calls `retry`. */
  action: 'Retry' | 'Request again';
}

/** Each reason a message cannot be read, in words (docs: sdk/README "Messages and failure reasons"). */
export const FAILURE_TEXT: Readonly<Record<DecryptFailureReason, FailureText>> = {
  unknown_epoch: {
    title: 'Waiting for the room’s key change to arrive.',
    hint: 'This message uses keys from a membership change this device has not applied yet. Retrying fetches the missing changes.',
    action: 'Retry',
  },
  missing_welcome: {
    title: 'This device holds no keys for this message.',
    hint: 'It was sent before this device joined the conversation, or the device’s invitation to the encrypted group has not arrived. Requesting again asks to join the group from its latest state.',
    action: 'Request again',
  },
  not_member: {
    title: 'Sent when this device was not part of the conversation.',
    hint: 'Messages from before you joined, after you were removed, or from someone no longer in the room cannot be read here.',
    action: 'Retry',
  },
  no_key_package: {
    title: 'This device’s invitation used a key it no longer holds.',
    hint: 'Fresh keys were uploaded. Requesting again asks to be let into the group anew.',
    action: 'Request again',
  },
  corrupt: {
    title: 'This message was damaged or tampered with.',
    hint: 'Its encryption or signature does not check out, so it is not shown.',
    action: 'Retry',
  },
};

export function failureText(reason: string): FailureText {
  return (FAILURE_TEXT as Record<string, FailureText>)[reason] ?? FAILURE_TEXT.corrupt;
}

/** The inner content of a decrypted message without its `type` (which becomes the event's type). */
function inner(content: Record<string, unknown>): { type: string; content: Record<string, unknown> } {
  const { type, ...rest } = content;
  return { type: typeof type === 'string' ? type : 'room.message', content: rest };
}

/** An encrypted event as this device reads it (unchanged while pending or undecryptable). */
export function decryptedEvent(ev: ClientEvent, view: DecryptView | undefined): ClientEvent {
  if (ev.type !== 'room.encrypted' || view?.state !== 'ok' || isRedacted(ev)) return ev;
  const { type, content } = inner(view.content);
  return { ...ev, type, content, unsigned: { ...(ev.unsigned ?? {}), e2e: { verified: view.verified } } };
}

/**
 * The timeline of an encrypted room as this device reads it. The server cannot aggregate
 * relations it cannot read, so decrypted edits and reactions are applied to their targets here,
 * in timeline order (history and live alike).
 */
export function decryptTimeline(events: readonly ClientEvent[], views: ReadonlyMap<string, DecryptView>, me: string): ClientEvent[] {
  const out: ClientEvent[] = [];
  const relations: ClientEvent[] = [];
  for (const ev of events) {
    const d = decryptedEvent(ev, views.get(ev.event_id));
    out.push(d);
    if (d !== ev && typeof d.content.relates_to === 'object' && d.content.relates_to !== null) relations.push(d);
  }
  if (relations.length === 0) return out;
  const index = new Map<string, number>();
  out.forEach((ev, i) => {
    index.set(ev.event_id, i);
  });
  for (const rel of relations) {
    // A reaction whose own event was redacted no longer counts.
    const at = index.get(rel.event_id);
    if (at !== undefined && isRedacted(out[at] as ClientEvent)) continue;
    applyRelation(out, index, rel, me);
  }
  return out;
}

/** The text of a decrypted message for search and previews (edits applied). */
export function bodyOf(ev: ClientEvent): string {
  const edit = (ev.unsigned?.edit as { content?: Record<string, unknown> } | undefined)?.content;
  const body = (edit ?? ev.content).body;
  return typeof body === 'string' ? body : '';
}

/**
 * Client-side search of an encrypted room: every word of the query must appear (case-
 * insensitive) in a message this device has decrypted. Newest first, at most `limit`.
 */
export function searchDecrypted(events: readonly ClientEvent[], query: string, limit = 50): ClientEvent[] {
  const words = query.toLowerCase().split(/\s+/).filter(Boolean);
  if (words.length === 0) return [];
  const hits: ClientEvent[] = [];
  for (let i = events.length - 1; i >= 0 && hits.length < limit; i--) {
    const ev = events[i] as ClientEvent;
    if (ev.type !== 'room.message' || isRedacted(ev)) continue;
    if ((ev.content.relates_to as { type?: string } | undefined)?.type === 'replace') continue;
    const text = bodyOf(ev).toLowerCase();
    if (text && words.every((w) => text.includes(w))) hits.push(ev);
  }
  return hits;
}

/** What a failed restore means, from the sdk's BackupError codes (the key itself is never echoed). */
export function recoveryErrorText(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  const message = err instanceof Error ? err.message : '';
  if (code === 'wrong_recovery_key') return 'That recovery key does not unlock this account’s backup. Check it and try again.';
  if (code === 'malformed')
    return /checksum/.test(message)
      ? 'That recovery key has a typo: its last group does not match. Check each group of four.'
      : 'That is not a recovery key: it has 14 groups of four letters and digits.';
  if (code === 'unsupported_version') return 'The backup was made by a newer version of Parley. Update this app and try again.';
  return `Could not restore: ${message || 'unknown error'}`;
}

/** Safety numbers read in groups of five digits. */
export function groupDigits(number: string, size = 5): string[] {
  const digits = number.replace(/\D/g, '');
  const out: string[] = [];
  for (let i = 0; i < digits.length; i += size) out.push(digits.slice(i, i + size));
  return out;
}

/** The to-device request a new device sends to the user's other devices (sdk: `requestApproval`). */
export const APPROVAL_TYPE = 'parley.device_approval';

/**
 * The 7 emoji both devices show while one approves the other: SHA-256 over the user, the asking
 * device's ID and its signing key (as its request carried it), read 6 bits an emoji from the
 * 64 SAS pictures (`table`, the sdk's SAS_EMOJI). The same on both screens only if the request
 * the approving device got carries the key the asking device holds.
 */
export async function approvalEmoji(
  table: readonly (readonly [string, string])[],
  userId: string,
  deviceId: string,
  signatureKey: string,
): Promise<{ emoji: string; name: string }[]> {
  const input = new TextEncoder().encode(`parley device approval v1\u0000${userId}\u0000${deviceId}\u0000${signatureKey}`);
  const hash = new Uint8Array(await crypto.subtle.digest('SHA-256', input));
  let bits = 0n;
  for (let i = 0; i < 6; i++) bits = (bits << 8n) | BigInt(hash[i] as number);
  const out: { emoji: string; name: string }[] = [];
  for (let i = 0; i < 7; i++) {
    const [emoji, name] = table[Number((bits >> BigInt(42 - 6 * i)) & 63n)] ?? ['?', '?'];
    out.push({ emoji, name });
  }
  return out;
}
