import type { RoomEvent } from '@parley/schemas';
import { parseUserId } from '@parley/schemas';
import { applyEvent, authorize, type StateMap } from '../../src/room/index.js';

export const ROOM_ID = '!room:a.example';

/**
 * Vectors hold only what the rules read (type, state_key, sender, content, sometimes
 * room_id); this fills the authorship fields the way an honest origin would, so the rules
 * see a complete event. Signatures and hashes are placeholders: auth never checks them.
 */
export function toEvent(partial: Partial<RoomEvent>, lamport = 0): RoomEvent {
  const sender = typeof partial.sender === 'string' ? partial.sender : '';
  return {
    room_id: ROOM_ID,
    origin: parseUserId(sender)?.server ?? 'invalid.example',
    origin_ts: 1_700_000_000_000 + lamport,
    lamport,
    hashes: { sha256: 'A'.repeat(43) },
    signatures: {},
    ...partial,
  } as RoomEvent;
}

/**
 * Replays `events` into a state map. Every event must itself pass the auth rules, so a
 * vector cannot start from a state that no real room could reach.
 */
export function buildState(events: readonly Partial<RoomEvent>[]): StateMap {
  let state: StateMap = new Map();
  events.forEach((partial, i) => {
    const event = toEvent(partial, i + 1);
    const verdict = authorize(state, event);
    if (!verdict.ok) throw new Error(`state event #${i} (${event.type}) is refused: ${verdict.reason}`);
    state = applyEvent(state, event);
  });
  return state;
}
