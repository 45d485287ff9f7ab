import { canSee } from '@parley/federation/room';
import type { ClientEvent, HistoryVisibility, SearchResponse } from '@parley/schemas';
import { badRequest } from '../errors.js';
import type { EventRepository } from '../repositories/events.js';
import type { RoomRepository } from '../repositories/rooms.js';
import type { AuthContext } from './sessions.js';
import type { TimelineService } from './timeline.js';
import { visibleRanges } from './visible-ranges.js';

/**
 * Full-text search (Postgres tsvector, ranked) over the unencrypted rooms the caller may
 * read. Encrypted rooms hold only `room.encrypted` events, which are never indexed.
 */
export class SearchService {
  constructor(
    private readonly rooms: RoomRepository,
    private readonly events: EventRepository,
    private readonly timeline: TimelineService,
  ) {}

  async search(
    auth: AuthContext,
    query: string,
    roomId: string | undefined,
    limit: number,
    next: string | undefined,
  ): Promise<SearchResponse> {
    const offset = next === undefined ? 0 : Number(/^o(\d{1,9})$/.exec(next)?.[1] ?? Number.NaN);
    if (!Number.isInteger(offset)) throw badRequest('PARLEY_INVALID_PARAM', 'next is not a token from this server', 'next');
    const mine = (await this.rooms.roomsOf(auth.userId)).filter((m) => m.membership === 'join').map((m) => m.room_id);
    const scope = roomId ? mine.filter((id) => id === roomId) : mine;
    const logs = new Map(await Promise.all(scope.map(async (id) => [id, await this.rooms.membershipLog(id, auth.userId)] as const)));
    // History visibility applies inside rooms the caller is in now, in the query itself: pages
    // are full, and `next` appears only when another visible hit exists.
    const ranges = new Map([...logs].map(([id, log]) => [id, visibleRanges(log)]));
    const hits = await this.events.search(scope, query, limit + 1, offset, ranges);
    const visible = hits.slice(0, limit).filter((h) => canSee(logs.get(h.room_id) ?? [], h.seq, h.visibility as HistoryVisibility));
    // Edits, reactions and threads aggregate only what the caller may see (issue 10, L1).
    const byId = new Map<string, ClientEvent>();
    for (const room of new Set(visible.map((h) => h.room_id))) {
      const rows = visible.filter((h) => h.room_id === room);
      for (const ev of await this.timeline.toClient(rows, { ...auth, log: logs.get(room) ?? [] })) byId.set(ev.event_id, ev);
    }
    const events = visible.map((h) => byId.get(h.event_id) as ClientEvent);
    const results = events.map((event, i) => ({ rank: Number(visible[i]?.rank ?? 0), event }));
    return hits.length > limit ? { results, count: results.length, next: `o${offset + limit}` } : { results, count: results.length };
  }
}
