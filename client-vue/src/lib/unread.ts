import type { ClientEvent } from '@parley/schemas';

/**
 * The first unread message when a room opens: the server reports how many messages from
 * others are unread (not which), so it is the `unread`-th newest such message. `complete`
 * is false when fewer are loaded than are unread (the first unread is further back).
 */
export function firstUnread(events: readonly ClientEvent[], unread: number, me: string): { eventId: string; complete: boolean } | null {
  if (unread <= 0) return null;
  const counted = events.filter((e) => {
    if (e.type !== 'room.message' || e.sender === me || e.unsigned?.redacted_because) return false;
    const rel = e.content.relates_to as { type?: string } | undefined;
    return rel?.type !== 'replace';
  });
  if (counted.length === 0) return null;
  const at = Math.max(0, counted.length - unread);
  return { eventId: (counted[at] as ClientEvent).event_id, complete: counted.length >= unread };
}
