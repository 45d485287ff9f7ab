import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { ClientMessage, check, MAX_CLIENT_MESSAGE_BYTES, StreamCloseCode } from '@parley/schemas';
import { type RawData, type WebSocket, WebSocketServer } from 'ws';
import { ParleyError } from '../errors.js';
import { type ClientIpSettings, clientIp } from '../http/client-ip.js';
import type { Logger } from '../logger.js';
import type { EventRepository } from '../repositories/events.js';
import type { ReadMarkerRepository } from '../repositories/room-extras.js';
import type { RoomRepository } from '../repositories/rooms.js';
import type { StreamNote, StreamRepository } from '../repositories/stream.js';
import type { PresenceService } from '../services/presence.js';
import type { SessionService } from '../services/sessions.js';
import { type ControlMessage, hydrate, revocationOf, type StreamBus } from '../services/stream-bus.js';
import { loadViewer } from '../services/stream-view.js';
import { StreamConnection } from './connection.js';

export const STREAM_PATH = '/api/v1/stream';
const REPLAY_BATCH = 500;

export interface GatewaySettings {
  heartbeatMs: number;
  identifyTimeoutMs: number;
  maxBufferedBytes: number;
  /** Which address is the client's (a device's last-seen IP): the HTTP API's rule. */
  clientIp?: ClientIpSettings;
}

export interface GatewayDeps {
  sessions: SessionService;
  rooms: RoomRepository;
  events: EventRepository;
  markers: ReadMarkerRepository;
  stream: StreamRepository;
  bus: StreamBus;
  presence: PresenceService;
  log: Logger;
  settings: GatewaySettings;
}

/**
 * The WebSocket side of the stream: identify, exact replay from a position, then live frames
 * from the bus, routed through per-room and per-user indexes so a note touches only the
 * sockets that may see it. Heartbeats cut dead peers; revocations close sockets at once.
 */
export class StreamGateway {
  private readonly wss: WebSocketServer;
  private readonly byRoom = new Map<string, Set<StreamConnection>>();
  private readonly byUser = new Map<string, Set<StreamConnection>>();
  private readonly all = new Set<StreamConnection>();
  private readonly unsubscribe: Array<() => void> = [];
  private readonly heartbeat: NodeJS.Timeout;
  private auditing = false;

  constructor(private readonly d: GatewayDeps) {
    this.wss = new WebSocketServer({ noServer: true, maxPayload: MAX_CLIENT_MESSAGE_BYTES, perMessageDeflate: false });
    this.unsubscribe.push(d.bus.onNote((note) => this.dispatch(note)));
    this.unsubscribe.push(d.bus.onControl((msg) => this.control(msg)));
    this.heartbeat = setInterval(() => this.checkHeartbeats(), Math.max(1000, Math.floor(d.settings.heartbeatMs / 2)));
    this.heartbeat.unref();
  }

  get connections(): number {
    return this.all.size;
  }

  /** For `server.on('upgrade')`: takes stream upgrades, refuses anything else. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const path = (req.url ?? '').split('?')[0];
    if (path !== STREAM_PATH) {
      socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    const ip = clientIp(req, this.d.settings.clientIp ?? { trustProxy: false, proxyHops: 1 });
    this.wss.handleUpgrade(req, socket, head, (ws) => this.onConnection(ws, ip));
  }

  private onConnection(ws: WebSocket, ip: string): void {
    const conn = new StreamConnection(ws, ip, this.d.settings.maxBufferedBytes, (c, joined, left) => this.reindex(c, joined, left));
    this.all.add(conn);
    const identifyTimer = setTimeout(() => {
      if (conn.state === 'connected') conn.close(StreamCloseCode.IDENTIFY_TIMEOUT, 'identify within the timeout');
    }, this.d.settings.identifyTimeoutMs);
    identifyTimer.unref();
    ws.on('message', (raw, isBinary) => {
      conn.lastSeen = Date.now();
      this.onMessage(conn, raw, isBinary).catch((err) => {
        this.d.log.error({ err }, 'stream message handling failed');
        conn.close(1011, 'internal error');
      });
    });
    ws.on('pong', () => {
      conn.lastSeen = Date.now();
    });
    ws.on('error', (err) => {
      // Oversized frames arrive here (ws closes with 1009 itself).
      this.d.log.info({ err: err.message }, 'stream socket error');
    });
    ws.on('close', () => {
      clearTimeout(identifyTimer);
      this.forget(conn);
    });
    conn.send({ op: 'hello', heartbeat_ms: this.d.settings.heartbeatMs, identify_timeout_ms: this.d.settings.identifyTimeoutMs });
  }

  private async onMessage(conn: StreamConnection, raw: RawData, isBinary: boolean): Promise<void> {
    if (conn.state === 'closed') return;
    if (isBinary) return conn.close(StreamCloseCode.INVALID_MESSAGE, 'send JSON text messages');
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw.toString());
    } catch {
      return conn.close(StreamCloseCode.INVALID_JSON, 'message is not valid JSON');
    }
    const op = (parsed as { op?: unknown } | null)?.op;
    if (op !== 'identify' && op !== 'heartbeat')
      return conn.close(StreamCloseCode.UNKNOWN_OP, `unknown op ${JSON.stringify(op)?.slice(0, 40)}`);
    const result = check(ClientMessage, parsed);
    if (!result.ok) return conn.close(StreamCloseCode.INVALID_MESSAGE, `${result.field || 'message'}: ${result.message}`.slice(0, 120));
    const message = result.value;
    if (message.op === 'heartbeat') {
      if (conn.state === 'connected') return conn.close(StreamCloseCode.NOT_IDENTIFIED, 'identify first');
      conn.send({ op: 'heartbeat_ack' });
      return;
    }
    if (conn.state !== 'connected') return conn.close(StreamCloseCode.ALREADY_IDENTIFIED, 'already identified');
    await this.identify(conn, message.token, message.since);
  }

  private async identify(conn: StreamConnection, token: string, since: number | undefined): Promise<void> {
    conn.state = 'replaying';
    try {
      const auth = await this.d.sessions.authenticate(token, conn.ip);
      conn.userId = auth.userId;
      conn.deviceId = auth.deviceId;
      conn.devicePk = auth.devicePk;
      conn.tokenId = auth.tokenId;
      conn.tokenExpiresTs = auth.tokenExpiresTs ?? Number.POSITIVE_INFINITY;
    } catch (err) {
      const reason = err instanceof ParleyError ? err.code : 'authentication failed';
      return conn.close(StreamCloseCode.AUTH_FAILED, reason);
    }
    conn.viewer = await loadViewer(this.d.rooms, this.d.stream, conn.userId, conn.deviceId, since !== undefined);
    // Index first, then read the edge: every note after the edge is then either queued in the
    // connection or replayed (overlap is dropped by position), never neither.
    this.index(conn);
    // A revocation published between authenticating and indexing was not heard: look again.
    if (!(await this.d.sessions.liveTokens([conn.tokenId])).has(conn.tokenId))
      return conn.close(StreamCloseCode.AUTH_FAILED, 'PARLEY_UNKNOWN_TOKEN');
    const edge = this.d.bus.position;
    if (since !== undefined && since > edge)
      return conn.close(StreamCloseCode.INVALID_POSITION, `since ${since} is ahead of the stream (${edge})`);
    await this.loadUnread(conn);
    conn.position = since ?? edge;
    // A position older than the retained stream cannot be replayed exactly: start afresh.
    let reset = since === undefined || since < (await this.d.stream.prunedThrough());
    if (reset) conn.position = edge;
    else if (!(await this.replay(conn, edge))) {
      reset = true;
      conn.position = edge;
    }
    if (conn.state !== 'replaying') return;
    conn.send({ op: 'ready', user_id: conn.userId, device_id: conn.deviceId, position: conn.position, reset });
    conn.goLive();
    await this.d.presence.connected(conn.userId).catch((err) => this.d.log.warn({ err }, 'presence update failed'));
  }

  /**
   * Sends everything between the client's position and the live edge, in order. False when
   * pruning overtook the replay (the client must resync).
   */
  private async replay(conn: StreamConnection, edge: number): Promise<boolean> {
    while (conn.state === 'replaying' && conn.position < edge) {
      const batch = await hydrate(
        await this.d.stream.forDevice(conn.userId, conn.deviceId, [...conn.rooms], conn.position, edge, REPLAY_BATCH),
        this.d.events,
      );
      // The horizon moves before rows go: read after the rows, it tells whether any were missing.
      if (conn.position < (await this.d.stream.prunedThrough())) return false;
      if (batch.length === 0) {
        conn.position = edge;
        break;
      }
      const joinsBefore = conn.joins;
      for (const note of batch) {
        conn.deliver(note);
        // Joining a room mid-batch widens what this device may see: query again from here.
        if (conn.joins !== joinsBefore) break;
      }
    }
    return true;
  }

  private async loadUnread(conn: StreamConnection): Promise<void> {
    const rooms = [...conn.rooms];
    const markers = await this.d.markers.forUser(conn.userId, rooms);
    const counts = await this.d.events.countUnread(
      conn.userId,
      rooms.map((r) => ({ roomId: r, afterSeq: markers.get(r) ?? 0 })),
    );
    for (const r of rooms) conn.unread.set(r, counts.get(r) ?? 0);
  }

  /** Sockets corked by the current burst of notes, uncorked together once it has been dispatched. */
  private readonly corked = new Set<StreamConnection>();
  private flushScheduled = false;

  private holdWrites(conn: StreamConnection): void {
    if (this.corked.has(conn) || !conn.cork()) return;
    this.corked.add(conn);
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    // After every note that arrived in this turn (a pub/sub message carries a batch of them).
    setImmediate(() => this.flushWrites());
  }

  private flushWrites(): void {
    this.flushScheduled = false;
    const conns = [...this.corked];
    this.corked.clear();
    for (const conn of conns) conn.uncork();
  }

  private dispatch(note: StreamNote): void {
    const targets = new Set<StreamConnection>();
    const add = (set: Set<StreamConnection> | undefined) => {
      if (set) for (const c of set) targets.add(c);
    };
    if (note.room_id !== null && !note.private) add(this.byRoom.get(note.room_id));
    if (note.user_id !== null) add(this.byUser.get(note.user_id));
    for (const r of note.room_ids ?? []) add(this.byRoom.get(r));
    for (const conn of targets) {
      try {
        if (conn.state === 'live') this.holdWrites(conn);
        conn.offer(note);
      } catch (err) {
        this.d.log.warn({ err }, 'stream delivery failed');
        conn.close(1011, 'internal error');
      }
    }
  }

  private control(msg: ControlMessage): void {
    for (const conn of this.byUser.get(msg.user_id) ?? []) {
      const hit = revocationOf(msg, conn);
      // Signed out: do not come back with this session. Replaced by a refresh: come back
      // with the new token (clients refresh once on AUTH_FAILED, then resume).
      if (hit === 'revoked') conn.close(StreamCloseCode.REVOKED, 'token revoked');
      else if (hit === 'replaced') conn.close(StreamCloseCode.AUTH_FAILED, 'PARLEY_TOKEN_REPLACED');
    }
  }

  /**
   * Streams end with their token: at its expiry, and when it is gone from the database (a
   * revocation whose pub/sub message was lost still ends the stream within an interval).
   */
  private async auditTokens(): Promise<void> {
    const now = this.d.sessions.now();
    const live = [...this.all].filter((c) => c.state === 'live' || c.state === 'replaying');
    for (const conn of live) if (conn.tokenExpiresTs <= now) conn.close(StreamCloseCode.AUTH_FAILED, 'PARLEY_TOKEN_EXPIRED');
    const ids = [...new Set(live.filter((c) => c.state !== 'closed' && c.tokenId !== '').map((c) => c.tokenId))];
    for (let i = 0; i < ids.length; i += 1000) {
      const slice = ids.slice(i, i + 1000);
      const checked = new Set(slice);
      const existing = await this.d.sessions.liveTokens(slice);
      for (const conn of live) {
        if (conn.state !== 'closed' && checked.has(conn.tokenId) && !existing.has(conn.tokenId))
          conn.close(StreamCloseCode.AUTH_FAILED, 'PARLEY_UNKNOWN_TOKEN');
      }
    }
  }

  private index(conn: StreamConnection): void {
    const mine = this.byUser.get(conn.userId) ?? new Set<StreamConnection>();
    this.byUser.set(conn.userId, mine);
    mine.add(conn);
    this.reindex(conn, [...conn.rooms], []);
  }

  private reindex(conn: StreamConnection, joined: string[], left: string[]): void {
    for (const r of joined) {
      const set = this.byRoom.get(r) ?? new Set<StreamConnection>();
      this.byRoom.set(r, set);
      set.add(conn);
    }
    for (const r of left) {
      const set = this.byRoom.get(r);
      set?.delete(conn);
      if (set?.size === 0) this.byRoom.delete(r);
    }
  }

  private forget(conn: StreamConnection): void {
    if (!this.all.delete(conn)) return;
    const wasIdentified = conn.userId !== '';
    conn.state = 'closed';
    this.reindex(conn, [], [...conn.rooms]);
    const mine = this.byUser.get(conn.userId);
    mine?.delete(conn);
    if (mine?.size === 0) this.byUser.delete(conn.userId);
    if (wasIdentified) {
      this.d.presence
        .disconnected(conn.userId, this.byUser.has(conn.userId))
        .catch((err) => this.d.log.warn({ err }, 'presence update failed'));
    }
  }

  private checkHeartbeats(): void {
    if (!this.auditing) {
      this.auditing = true;
      this.auditTokens()
        .catch((err) => this.d.log.warn({ err }, 'stream token audit failed'))
        .finally(() => {
          this.auditing = false;
        });
    }
    const deadline = Date.now() - 2 * this.d.settings.heartbeatMs;
    for (const conn of this.all) {
      if (conn.lastSeen < deadline) {
        conn.ws.terminate();
        this.forget(conn);
      } else if (conn.state !== 'closed') {
        conn.ws.ping();
      }
    }
  }

  /** Closes every socket with `code` (clients resume elsewhere or later). */
  disconnectAll(code: number, reason: string): void {
    for (const conn of this.all) conn.close(code, reason);
  }

  /** Shutdown: tell every client to go elsewhere and resume. */
  async close(): Promise<void> {
    clearInterval(this.heartbeat);
    for (const off of this.unsubscribe) off();
    this.flushWrites();
    this.disconnectAll(StreamCloseCode.GOING_AWAY, 'server shutting down');
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }
}
