import type { ClientEvent } from '@parley/schemas';
import type { EventRow } from '../repositories/events.js';

// A leaf module: the stream (stream-bus.ts), the room log and the timeline all render events
// with it, without importing one another for it.

/** The client form of a stored event, without per-viewer additions. */
export function clientEventOf(row: EventRow): ClientEvent {
  const ev = row.event;
  const out: ClientEvent = {
    event_id: row.event_id,
    room_id: row.room_id,
    seq: row.seq,
    type: ev.type,
    sender: ev.sender,
    origin_ts: ev.origin_ts,
    content: ev.content,
  };
  if (ev.state_key !== undefined) out.state_key = ev.state_key;
  if (row.redacted_by) out.unsigned = { redacted_because: row.redacted_by };
  return out;
}
