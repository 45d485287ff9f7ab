import { check, isServerName, PublicRoomList, ROOM_ID_PATTERN } from '@parley/schemas';
import { notFound, ParleyError } from '../errors.js';
import type { Clock } from '../services/clock.js';
import { remoteFailure } from './remote-errors.js';
import type { FederationContext } from './setup.js';

// Aliases of other servers are cached this long (they rarely move, and a join retried a
// minute later should not ask again); failures are not cached.
const ALIAS_TTL_MS = 60_000;
const ALIAS_CACHE_MAX = 1000;
// A directory page or alias answer is small; anything bigger is a misbehaving server.
const QUERY_MAX_BYTES = 1024 * 1024;
const MAX_SERVERS = 20;
const SINCE_MAX_CHARS = 256;
const roomIdRe = new RegExp(ROOM_ID_PATTERN);

export interface AliasAnswer {
  room_id: string;
  servers: string[];
}

export interface DirectoryPage {
  limit: number;
  since?: string | undefined;
  q?: string | null | undefined;
}

/**
 * What this server asks other servers on behalf of its clients: aliases (`query/alias`,
 * cached briefly and single-flight) and public room directories (`directory/rooms`). Answers
 * are validated before a client sees them.
 */
export class RemoteDirectory {
  readonly #aliases = new Map<string, { answer: AliasAnswer; expires: number }>();
  readonly #inflight = new Map<string, Promise<AliasAnswer>>();

  constructor(
    private readonly fed: Pick<FederationContext, 'client' | 'serverName'>,
    private readonly clock: Clock,
    private readonly timeoutMs: number,
  ) {}

  /** `#name:server` of another server → its room, asking that server. */
  async resolveAlias(alias: string): Promise<AliasAnswer> {
    const server = alias.slice(alias.indexOf(':') + 1);
    if (!isServerName(server)) throw new ParleyError(400, 'PARLEY_INVALID_PARAM', `${alias} does not name a server`, { field: 'alias' });
    if (server === this.fed.serverName) throw new Error('resolveAlias is for aliases of other servers');
    const cached = this.#aliases.get(alias);
    if (cached && cached.expires > this.clock.now()) return cached.answer;
    let pending = this.#inflight.get(alias);
    if (!pending) {
      pending = this.#askAlias(server, alias).finally(() => this.#inflight.delete(alias));
      this.#inflight.set(alias, pending);
    }
    return pending;
  }

  async #askAlias(server: string, alias: string): Promise<AliasAnswer> {
    let body: unknown;
    try {
      ({ body } = await this.fed.client.request({
        destination: server,
        method: 'GET',
        path: `/federation/v1/query/alias?alias=${encodeURIComponent(alias)}`,
        maxBytes: QUERY_MAX_BYTES,
        timeoutMs: this.timeoutMs,
      }));
    } catch (err) {
      throw remoteFailure(err, server, `alias ${alias}`);
    }
    const { room_id: roomId, servers } = (body ?? {}) as { room_id?: unknown; servers?: unknown };
    if (typeof roomId !== 'string' || roomId.length > 255 || !roomIdRe.test(roomId)) {
      throw new ParleyError(502, 'PARLEY_UNAVAILABLE', `${server} answered for ${alias} without a valid room_id`);
    }
    const via = Array.isArray(servers) ? servers.filter(isServerName).slice(0, MAX_SERVERS) : [];
    const answer = { room_id: roomId, servers: via.length > 0 ? via : [server] };
    this.#aliases.set(alias, { answer, expires: this.clock.now() + ALIAS_TTL_MS });
    // Map keeps insertion order: the first key is the oldest entry.
    while (this.#aliases.size > ALIAS_CACHE_MAX) this.#aliases.delete(this.#aliases.keys().next().value as string);
    return answer;
  }

  /** One page of another server's public room directory. */
  async publicRooms(server: string, page: DirectoryPage): Promise<PublicRoomList> {
    if (server === this.fed.serverName) throw new Error('publicRooms is for other servers');
    const params = new URLSearchParams({ limit: String(page.limit) });
    if (page.since !== undefined) params.set('since', page.since);
    if (page.q) params.set('q', page.q);
    let body: unknown;
    try {
      ({ body } = await this.fed.client.request({
        destination: server,
        method: 'GET',
        path: `/federation/v1/directory/rooms?${params}`,
        maxBytes: QUERY_MAX_BYTES,
        timeoutMs: this.timeoutMs,
      }));
    } catch (err) {
      const failure = remoteFailure(err, server, 'a public room directory');
      if (failure.status === 404) throw notFound(`${server} does not publish a room directory`);
      throw failure;
    }
    const checked = check(PublicRoomList, body);
    if (!checked.ok) {
      throw new ParleyError(502, 'PARLEY_UNAVAILABLE', `${server} answered with a malformed directory (${checked.field || 'body'})`);
    }
    const { chunk, next } = checked.value;
    // Only the fields we know: a peer's extra members never reach our clients.
    const rooms = chunk.slice(0, page.limit).map(({ room_id, name, topic, canonical_alias, joined_members, kind }) => ({
      room_id,
      name,
      topic,
      canonical_alias,
      joined_members,
      kind,
    }));
    const list: PublicRoomList = { chunk: rooms };
    if (next !== undefined && next.length <= SINCE_MAX_CHARS && chunk.length > 0) list.next = next;
    return list;
  }
}
