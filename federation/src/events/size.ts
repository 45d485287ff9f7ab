import { MAX_CONTENT_BYTES, MAX_EVENT_BYTES } from '@parley/schemas';
import { canonicalJson } from '../canonical/index.js';
import type { UnsignedEvent } from './types.js';

/** `tooLarge` is false when the event could not be measured at all (not JSON we sign). */
export type SizeCheck = { ok: true; eventBytes: number; contentBytes: number } | { ok: false; tooLarge: boolean; reason: string };

/**
 * Size caps (docs/protocol.md): the canonical event ≤ MAX_EVENT_BYTES and its canonical content ≤
 * MAX_CONTENT_BYTES, counted in UTF-8 bytes. `unsigned` is not counted: it is each
 * receiver's own annotation, not part of what the origin sent. Never throws.
 */
export function checkEventSize(event: UnsignedEvent): SizeCheck {
  try {
    const { unsigned: _u, ...sent } = event;
    const eventBytes = Buffer.byteLength(canonicalJson(sent, 'event'));
    const contentBytes = Buffer.byteLength(canonicalJson(event.content, 'event.content'));
    if (contentBytes > MAX_CONTENT_BYTES) {
      return { ok: false, tooLarge: true, reason: `event.content is ${contentBytes} bytes, more than the ${MAX_CONTENT_BYTES} allowed` };
    }
    if (eventBytes > MAX_EVENT_BYTES) {
      return { ok: false, tooLarge: true, reason: `event is ${eventBytes} bytes, more than the ${MAX_EVENT_BYTES} allowed` };
    }
    return { ok: true, eventBytes, contentBytes };
  } catch (err) {
    return { ok: false, tooLarge: false, reason: (err as Error).message };
  }
}
