import type {
  ClientEvent,
  ContextResponse,
  CreateRoomRequest,
  Hierarchy,
  Member,
  MessagesResponse,
  PublicRoomList,
  RoomSummary,
  SearchResponse,
  SendResponse,
  ServerDirectory,
} from '@parley/schemas';
import type { ParleyClient } from './client.js';

const enc = encodeURIComponent;

function query(params: Record<string, string | number | undefined>): string {
  const parts = Object.entries(params)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${enc(k)}=${enc(String(v))}`);
  return parts.length > 0 ? `?${parts.join('&')}` : '';
}

let txnCounter = 0;
/** A fresh transaction ID; retries of one send must reuse the ID they got the first time. */
export function newTxnId(): string {
  txnCounter += 1;
  return `${Date.now().toString(36)}.${txnCounter}.${Math.random().toString(36).slice(2, 8)}`;
}

/** Rooms, messages, directory and search for one signed-in client. */
export class RoomsApi {
  constructor(private readonly client: ParleyClient) {}

  create(body: CreateRoomRequest): Promise<{ room_id: string }> {
    return this.client.request('POST', '/api/v1/rooms', body);
  }

  async list(): Promise<RoomSummary[]> {
    return (await this.client.request<{ rooms: RoomSummary[] }>('GET', '/api/v1/rooms')).rooms;
  }

  /** Joins by room ID or alias. */
  join(roomIdOrAlias: string): Promise<{ room_id: string }> {
    return this.client.request('POST', `/api/v1/rooms/${enc(roomIdOrAlias)}/join`, {});
  }

  leave(roomId: string, reason?: string): Promise<SendResponse> {
    return this.client.request('POST', `/api/v1/rooms/${enc(roomId)}/leave`, reason ? { reason } : {});
  }

  private membership(action: 'invite' | 'kick' | 'ban' | 'unban', roomId: string, userId: string, reason?: string): Promise<SendResponse> {
    return this.client.request(
      'POST',
      `/api/v1/rooms/${enc(roomId)}/${action}`,
      reason ? { user_id: userId, reason } : { user_id: userId },
    );
  }
  invite(roomId: string, userId: string, reason?: string) {
    return this.membership('invite', roomId, userId, reason);
  }
  kick(roomId: string, userId: string, reason?: string) {
    return this.membership('kick', roomId, userId, reason);
  }
  ban(roomId: string, userId: string, reason?: string) {
    return this.membership('ban', roomId, userId, reason);
  }
  unban(roomId: string, userId: string, reason?: string) {
    return this.membership('unban', roomId, userId, reason);
  }

  /** Sends an event; pass the same txnId when retrying so the server answers the same event. */
  send(roomId: string, type: string, content: Record<string, unknown>, txnId: string = newTxnId()): Promise<SendResponse> {
    return this.client.request('PUT', `/api/v1/rooms/${enc(roomId)}/send/${enc(type)}/${enc(txnId)}`, content);
  }

  sendText(roomId: string, body: string, txnId?: string): Promise<SendResponse> {
    return this.send(roomId, 'room.message', { body, msgtype: 'text' }, txnId);
  }

  edit(roomId: string, eventId: string, newBody: string): Promise<SendResponse> {
    return this.send(roomId, 'room.message', {
      body: `* ${newBody}`,
      new_content: { body: newBody, msgtype: 'text' },
      relates_to: { type: 'replace', event_id: eventId },
    });
  }

  reply(roomId: string, eventId: string, body: string, thread = false): Promise<SendResponse> {
    return this.send(roomId, 'room.message', {
      body,
      msgtype: 'text',
      relates_to: { type: thread ? 'thread' : 'reply', event_id: eventId },
    });
  }

  react(roomId: string, eventId: string, key: string): Promise<SendResponse> {
    return this.send(roomId, 'room.reaction', { relates_to: { type: 'annotation', event_id: eventId, key } });
  }

  redact(roomId: string, eventId: string, reason?: string, txnId: string = newTxnId()): Promise<SendResponse> {
    return this.client.request('PUT', `/api/v1/rooms/${enc(roomId)}/redact/${enc(eventId)}/${enc(txnId)}`, reason ? { reason } : {});
  }

  setState(roomId: string, type: string, content: Record<string, unknown>, stateKey = ''): Promise<SendResponse> {
    return this.client.request('PUT', `/api/v1/rooms/${enc(roomId)}/state/${enc(type)}/${enc(stateKey)}`, content);
  }

  getState(roomId: string): Promise<ClientEvent[]> {
    return this.client.request('GET', `/api/v1/rooms/${enc(roomId)}/state`);
  }

  getStateContent<T = Record<string, unknown>>(roomId: string, type: string, stateKey = ''): Promise<T> {
    return this.client.request('GET', `/api/v1/rooms/${enc(roomId)}/state/${enc(type)}/${enc(stateKey)}`);
  }

  async members(roomId: string): Promise<Member[]> {
    return (await this.client.request<{ members: Member[] }>('GET', `/api/v1/rooms/${enc(roomId)}/members`)).members;
  }

  messages(roomId: string, opts: { from?: string; dir?: 'b' | 'f'; limit?: number } = {}): Promise<MessagesResponse> {
    return this.client.request('GET', `/api/v1/rooms/${enc(roomId)}/messages${query(opts)}`);
  }

  event(roomId: string, eventId: string): Promise<ClientEvent> {
    return this.client.request('GET', `/api/v1/rooms/${enc(roomId)}/event/${enc(eventId)}`);
  }

  context(roomId: string, eventId: string, limit?: number): Promise<ContextResponse> {
    return this.client.request('GET', `/api/v1/rooms/${enc(roomId)}/context/${enc(eventId)}${query({ limit })}`);
  }

  async relations(roomId: string, eventId: string, type?: 'replace' | 'reply' | 'thread' | 'annotation'): Promise<ClientEvent[]> {
    return (
      await this.client.request<{ chunk: ClientEvent[] }>('GET', `/api/v1/rooms/${enc(roomId)}/relations/${enc(eventId)}${query({ type })}`)
    ).chunk;
  }

  markRead(roomId: string, eventId: string): Promise<Record<string, never>> {
    return this.client.request('POST', `/api/v1/rooms/${enc(roomId)}/receipt`, { event_id: eventId });
  }

  hierarchy(spaceId: string): Promise<Hierarchy> {
    return this.client.request('GET', `/api/v1/rooms/${enc(spaceId)}/hierarchy`);
  }

  /** The public room directory of this server, or with `server` of another one (asked over federation). */
  directory(opts: { limit?: number; since?: string; q?: string; server?: string } = {}): Promise<PublicRoomList> {
    return this.client.request('GET', `/api/v1/directory/rooms${query(opts)}`);
  }

  /** Servers this homeserver knows from bootstrap lists (only servers that announce themselves). */
  knownServers(): Promise<ServerDirectory> {
    return this.client.request('GET', '/api/v1/directory/servers');
  }

  resolveAlias(alias: string): Promise<{ room_id: string; servers: string[] }> {
    return this.client.request('GET', `/api/v1/directory/alias/${enc(alias)}`);
  }

  putAlias(alias: string, roomId: string): Promise<Record<string, never>> {
    return this.client.request('PUT', `/api/v1/directory/alias/${enc(alias)}`, { room_id: roomId });
  }

  deleteAlias(alias: string): Promise<Record<string, never>> {
    return this.client.request('DELETE', `/api/v1/directory/alias/${enc(alias)}`);
  }

  search(q: string, opts: { room_id?: string; limit?: number; next?: string } = {}): Promise<SearchResponse> {
    return this.client.request('GET', `/api/v1/search${query({ q, ...opts })}`);
  }
}
