import type { RoomEvent } from '@parley/schemas';

/** Room state while replaying a log: the latest state event per `stateKey(type, state_key)`. */
export type StateMap = Map<string, RoomEvent>;

/** The StateMap key of a state event. NUL cannot occur in an event type, so keys never collide. */
export function stateKey(type: string, stateKeyValue: string): string {
  return `${type}\u0000${stateKeyValue}`;
}

export type AuthResult = { ok: true } | { ok: false; reason: string; code?: string };

/**
 * The room's auth rules as one function: may `event` be appended to a room whose state is
 * `state` (the state before the event)? Called for every event, state or not; the chain
 * verifier applies a state event to `state` only after it is allowed. For a redaction, `ctx`
 * carries the sender of the redacted event (from earlier in the chain), since "own events"
 * is judged by it.
 */
export type AuthorizeFn = (
  state: StateMap,
  event: RoomEvent,
  ctx?: { redactedEventSender?: string; mlsEpoch?: number | null },
) => AuthResult;
