import { REDACTION_KEEPS } from '@parley/schemas';
import { canonicalJson } from '../canonical/index.js';
import type { RoomEvent, UnsignedEvent } from './types.js';

/**
 * Top-level members that survive redaction (schemas/src/events.ts): enough to keep the event
 * in the chain, re-derive its ID and check its origin's signature, never what a user wrote.
 * `unsigned` goes too: it is not signed, so a redacted copy must not carry it.
 */
const KEPT_TOP_LEVEL = ['room_id', 'type', 'state_key', 'sender', 'origin', 'origin_ts', 'lamport', 'hashes', 'signatures'] as const;

/**
 * The redacted form of an event (docs/protocol.md): what the event ID and the origin's signature
 * cover, so a redacted event still verifies. Content keeps only the keys REDACTION_KEEPS
 * lists for its type. Does not modify its input; nested values may be shared with it.
 */
export function redact(event: RoomEvent): RoomEvent;
export function redact(event: UnsignedEvent): UnsignedEvent;
export function redact(event: UnsignedEvent): UnsignedEvent {
  if (typeof event !== 'object' || event === null) throw new TypeError('event: expected an object');
  const source = event as unknown as Record<string, unknown>;
  // Object.fromEntries defines own properties, so a hostile `__proto__` key stays a plain key.
  const top = Object.fromEntries(KEPT_TOP_LEVEL.filter((key) => Object.hasOwn(source, key)).map((key) => [key, source[key]]));
  return { ...top, content: redactContent(source.type, source.content) } as UnsignedEvent;
}

function redactContent(type: unknown, content: unknown): Record<string, unknown> {
  if (typeof content !== 'object' || content === null || Array.isArray(content)) return {};
  // hasOwn: a type named `constructor` must not find Object.prototype's.
  const keeps = typeof type === 'string' && Object.hasOwn(REDACTION_KEEPS, type) ? REDACTION_KEEPS[type] : undefined;
  if (keeps === undefined) return {};
  const entries = Object.entries(content);
  return Object.fromEntries(keeps === 'all' ? entries : entries.filter(([key]) => keeps.includes(key)));
}

/**
 * True when the event is already in its redacted form (ignoring `unsigned`, which servers
 * annotate redacted events with). Such an event passes verification without its content
 * hash, which only the full content could match. Throws like canonicalJson on non-JSON input.
 */
export function isRedacted(event: UnsignedEvent): boolean {
  const { unsigned: _unsigned, ...signed } = event;
  return canonicalJson(signed, 'event') === canonicalJson(redact(event), 'event');
}
