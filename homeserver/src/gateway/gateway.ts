import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import {
  check,
  HeartbeatMessage,
  IdentifyMessage,
  MAX_CLIENT_MESSAGE_BYTES,
  SEND_ENVELOPE_MAX_BYTES,
  SendMessage,
  type SendResponse,
  StreamCloseCode,
} from '@parley/schemas';
import { Type } from '@sinclair/typebox';
import { type RawData, type WebSocket, WebSocketServer } from 'ws';
import { ParleyError } from '../errors.js';
import { type ClientIpSettings, clientIp } from '../http/client-ip.js';
import { bodyTooLarge, toParleyError } from '../http/middleware/errors.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import type { EventRepository } from '../repositories/events.js';
import type { ReadMarkerRepository } from '../repositories/room-extras.js';
import type { RoomRepository } from '../repositories/rooms.js';
import type { StreamNote, StreamRepository } from '../repositories/stream.js';
import type { PresenceService } from '../services/presence.js';
import type { RoomService } from '../services/rooms.js';
import type { AuthContext, SessionService } from '../services/sessions.js';
import { type ControlMessage, hydrate, revocationOf, type StreamBus } from '../services/stream-bus.js';
import { loadViewer } from '../services/stream-view.js';
import { type ConnectionState, StreamConnection } from './connection.js';

export const STREAM_PATH = '/api/v1/stream';
/** The ops other than `send` (which is validated on its own, see onSend). */
const SessionMessage = Type.Union([IdentifyMessage, HeartbeatMessage]);
const REPLAY_BATCH = 500;
/**
 * `send`s of one socket being processed (handed to RoomService, not yet answered) at most; at
 * this many the gateway stops reading the socket until one is answered (TCP back-pressure).
 */
export const MAX_SENDS_IN_FLIGHT = 256;

export interface GatewaySettings {
  heartbeatMs: number;
  identifyTimeoutMs: number;
  maxBufferedBytes: number;
  /** The HTTP API's JSON body cap (http.max_json_body_bytes): a `send`'s content is held to it. */
  maxSendBodyBytes: number;
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
  /** Writes `send`s (the HTTP send's RoomService.send). */
  roomService: Pick<RoomService, 'send'>;
  /** Counts and times stream sends (`/metrics`); absent in tests that build a gateway alone. */
  metrics?: Pick<Metrics, 'streamSends' | 'streamSendDuration'>;
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
  /** Times a socket's reading was paused because MAX_SENDS_IN_FLIGHT `send`s were being processed. */
  private sendPauseCount = 0;

  constructor(private readonly d: GatewayDeps) {
    // The largest message is a `send` with the largest content the HTTP send admits.
    const maxPayload = Math.max(MAX_CLIENT_MESSAGE_BYTES, d.settings.maxSendBodyBytes + SEND_ENVELOPE_MAX_BYTES);
    this.wss = new WebSocketServer({ noServer: true, maxPayload, perMessageDeflate: false });
    this.unsubscribe.push(d.bus.onNote((note) => this.dispatch(note)));
    this.unsubscribe.push(d.bus.onControl((msg) => this.control(msg)));
    this.heartbeat = setInterval(() => this.checkHeartbeats(), Math.max(1000, Math.floor(d.settings.heartbeatMs / 2)));
    this.heartbeat.unref();
  }

  get connections(): number {
    return this.all.size;
  }

  /** `send` back-pressure so far: sockets paused (counted each time), and sends being processed now. */
  get sendStats(): { pauses: number; inFlight: number } {
    let inFlight = 0;
    for (const c of this.all) inFlight += c.sendsInFlight;
    return { pauses: this.sendPauseCount, inFlight };
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
      this.onMessage(conn, raw as Buffer, isBinary).catch((err) => {
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
    // Handled before any await: sends reach RoomService in the order they arrived.
    if (op === 'send') return this.onSend(conn, parsed, (raw as Buffer).length);
    // Only `send` may be larger than MAX_CLIENT_MESSAGE_BYTES (the socket admits the largest send).
    if ((raw as Buffer).length > MAX_CLIENT_MESSAGE_BYTES) return conn.close(StreamCloseCode.TOO_LARGE, 'message too large');
    if (op !== 'identify' && op !== 'heartbeat')
      return conn.close(StreamCloseCode.UNKNOWN_OP, `unknown op ${JSON.stringify(op)?.slice(0, 40)}`);
    const result = check(SessionMessage, parsed);
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
    let auth: AuthContext;
    try {
      auth = await this.d.sessions.authenticate(token, conn.ip);
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
    // Revoked meanwhile?
    if ((conn.state as ConnectionState) === 'closed') return;
    // Sends that came with (or right after) identify waited for this; the replay need not finish.
    conn.auth = auth;
    this.pumpSends(conn);
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
   * A `send` message: validated now, queued in arrival order, handed to RoomService by
   * pumpSends. Refused (closed, like any op) before identify; answered `send_error` 400 naming
   * the field when invalid but its `id` can be read (any non-empty string, echoed as sent).
   */
  private onSend(conn: StreamConnection, parsed: unknown, bytes: number): void {
    if (conn.state === 'connected') {
      conn.close(StreamCloseCode.NOT_IDENTIFIED, 'identify first');
      return;
    }
    const result = check(SendMessage, parsed);
    if (!result.ok) {
      const id = (parsed as { id?: unknown }).id;
      if (typeof id !== 'string' || id === '')
        conn.close(StreamCloseCode.INVALID_MESSAGE, `${result.field || 'message'}: ${result.message}`.slice(0, 120));
      else this.answerError(conn, id, new ParleyError(400, result.code, result.message, { field: result.field }));
      return;
    }
    const message = result.value;
    // The HTTP send holds its body (the content) to the JSON body cap; only a message larger than
    // the cap can hold content larger than it.
    const cap = this.d.settings.maxSendBodyBytes;
    if (bytes > cap && Buffer.byteLength(JSON.stringify(message.content)) > cap) {
      this.answerError(conn, message.id, bodyTooLarge());
      return;
    }
    conn.sendQueue.push(message);
    this.pumpSends(conn);
  }

  /**
   * Hands queued sends to RoomService in order, at most MAX_SENDS_IN_FLIGHT at a time. At the
   * limit the socket is not read any more (the client's writes back up in TCP) until an answer
   * frees a place; nothing is dropped or refused. Sends wait while the token is authenticated.
   */
  private pumpSends(conn: StreamConnection): void {
    const auth = conn.auth;
    while (auth && conn.state !== 'closed' && conn.sendsInFlight < MAX_SENDS_IN_FLIGHT && conn.sendQueue.length > 0) {
      const m = conn.sendQueue.shift() as SendMessage;
      conn.sendsInFlight += 1;
      const started = performance.now();
      let answer: Promise<SendResponse>;
      try {
        answer = this.d.roomService.send(auth, m.room_id, m.type, m.txn_id, m.content);
      } catch (err) {
        answer = Promise.reject(err);
      }
      answer
        .then(
          (sent) => {
            this.counted(sent.queued ? 202 : 200, started);
            this.answerSent(conn, m.id, sent);
          },
          (err) => this.answerError(conn, m.id, err, started),
        )
        .finally(() => {
          conn.sendsInFlight -= 1;
          // An answer proves the peer alive while its heartbeats wait unread behind a pause.
          conn.lastSeen = Date.now();
          this.pumpSends(conn);
        });
    }
    if (conn.state === 'closed') return;
    // Queued sends count too: before authentication nothing is handed over, and the queue is bounded the same way.
    const full = conn.sendsInFlight + conn.sendQueue.length >= MAX_SENDS_IN_FLIGHT;
    if (full && !conn.readPaused) {
      conn.readPaused = true;
      this.sendPauseCount += 1;
      conn.ws.pause();
    } else if (!full && conn.readPaused) {
      conn.readPaused = false;
      conn.ws.resume();
    }
  }

  /** A send answered (`started`: when it was handed over; refused before that, it is not timed). */
  private counted(status: number, started?: number): void {
    this.d.metrics?.streamSends.inc({ status: String(status) });
    if (started !== undefined) this.d.metrics?.streamSendDuration.observe((performance.now() - started) / 1000);
  }

  private answerSent(conn: StreamConnection, id: string, sent: SendResponse): void {
    if (conn.state === 'closed') return;
    this.holdWrites(conn);
    conn.send({
      op: 'sent',
      id,
      event_id: sent.event_id,
      ...(sent.seq === undefined ? {} : { seq: sent.seq }),
      ...(sent.queued === undefined ? {} : { queued: sent.queued }),
    });
  }

  /** The status and body the HTTP send would answer with (the HTTP error mapping, shared). */
  private answerError(conn: StreamConnection, id: string, err: unknown, started?: number): void {
    const error = toParleyError(err);
    this.counted(error.status, started);
    if (error.status >= 500) this.d.log.error({ err }, 'stream send failed');
    if (conn.state === 'closed') return;
    this.holdWrites(conn);
    conn.send({ op: 'send_error', id, status: error.status, ...error.toBody() });
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
    conn.sendQueue = [];
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
