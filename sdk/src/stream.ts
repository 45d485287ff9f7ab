import { type ClientMessage, type SendResponse, StreamCloseCode } from '@parley/schemas';
import { assertBackoffOptions, type BackoffOptions, backoffDelay, DEFAULT_BACKOFF } from './backoff.js';
import type { ParleyClient } from './client.js';
import { Emitter } from './emitter.js';
import { ParleyApiError } from './errors.js';
import { FrameFeed, parseFrame, type StreamEvents } from './frames.js';
import { isPosition, streamUrl } from './positions.js';
import { isDeadSession, SyncPoller } from './sync-poller.js';
import { assertClient, assertOptionalFunction, assertOptionalPosition } from './validate.js';

/** The part of the WebSocket API the stream uses: the browser's global and `ws` both fit. */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  // `unknown`, so both the DOM's and `ws`'s typed listeners accept ours; we read `data`,
  // `code` and `reason`, which both implementations provide.
  addEventListener(type: 'open' | 'message' | 'close' | 'error', listener: (event: unknown) => void): void;
  /** `ws` only: drop the TCP connection without a closing handshake. */
  terminate?(): void;
}
export type WebSocketConstructor = new (url: string) => WebSocketLike;

export interface ParleyStreamOptions {
  client: ParleyClient;
  /** Defaults to the global WebSocket; Node 20 has none, so pass `ws`'s there. */
  WebSocket?: WebSocketConstructor;
  /** Last position processed earlier (persisted from `onPosition`); omit to start afresh. */
  since?: number;
  /** Called after each frame's listeners ran, and when `ready` moves the position. */
  onPosition?: (position: number) => void;
  backoff?: BackoffOptions;
  random?: () => number;
  /** true: long-poll only. 'auto': long-poll when WebSockets are missing or keep failing. */
  longPoll?: boolean | 'auto';
  /** Longest heartbeat interval (the server's `heartbeat_ms` wins when shorter). Twice it bounds the wait for `hello`. */
  heartbeatMs?: number;
  /** While long-polling in 'auto' mode, how often to try the WebSocket again. */
  socketRetryMs?: number;
  /** Long-poll request timeout (the server may hold each request this long). */
  pollTimeoutMs?: number;
  now?: () => number;
}

const OPEN = 1;
const DEFAULT_HEARTBEAT_MS = 15_000;
const DEFAULT_SOCKET_RETRY_MS = 60_000;
// Socket connections that end before `ready`, in a row, before 'auto' falls back to long-poll.
const FAILURES_BEFORE_LONG_POLL = 3;
// Same margin as ParleyClient: identify with a token that outlives the handshake.
const REFRESH_MARGIN_MS = 30_000;

/** A `send` written on a socket and not answered yet. */
interface PendingSend {
  resolve: (sent: SendResponse) => void;
  reject: (err: ParleyApiError) => void;
}

/** One socket and what it has said so far; callbacks from a replaced one are ignored. */
interface Connection {
  ws: WebSocketLike;
  hello: boolean;
  ready: boolean;
  intervalMs: number;
  heartbeat?: ReturnType<typeof setInterval>;
  watchdog?: ReturnType<typeof setTimeout>;
  /** `send`s on this socket by correlation id; rejected when the socket goes. */
  sends: Map<string, PendingSend>;
}

/**
 * The live stream (docs/protocol.md) over a WebSocket: identify, replay from the last position,
 * then live frames, reconnecting and resuming until `close()` or the session dies. Frames
 * reach the app at most once each, in position order (see FrameFeed).
 */
export class ParleyStream extends Emitter<StreamEvents> {
  readonly #client: ParleyClient;
  readonly #WebSocket: WebSocketConstructor | undefined;
  readonly #feed: FrameFeed;
  readonly #backoff: BackoffOptions;
  readonly #random: () => number;
  readonly #longPoll: boolean | 'auto';
  readonly #heartbeatMs: number | undefined;
  readonly #socketRetryMs: number;
  readonly #pollTimeoutMs: number | undefined;
  readonly #now: () => number;

  #state: 'idle' | 'running' | 'closed' = 'idle';
  #conn: Connection | null = null;
  #reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  #attempt = 0;
  #failuresBeforeReady = 0;
  #poller: { poller: SyncPoller; unsubscribe: () => void } | null = null;
  #sentToken: string | null = null;
  // AUTH_FAILED earns exactly one refresh until the next `ready`.
  #refreshBeforeNext = false;
  #refreshedForAuth = false;
  #nextSendId = 0;

  constructor(options: ParleyStreamOptions) {
    super();
    if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
    this.#client = assertClient(options.client);
    this.#WebSocket = assertOptionalFunction(options.WebSocket, 'options.WebSocket') ?? globalWebSocket();
    this.#longPoll = options.longPoll ?? false;
    if (this.#longPoll !== true && this.#longPoll !== false && this.#longPoll !== 'auto') {
      throw new TypeError("options.longPoll must be true, false or 'auto'");
    }
    if (this.#WebSocket === undefined && this.#longPoll === false) {
      throw new TypeError("no global WebSocket in this environment; pass options.WebSocket or longPoll: 'auto'");
    }
    this.#backoff = options.backoff === undefined ? DEFAULT_BACKOFF : assertBackoffOptions(options.backoff, 'options.backoff');
    this.#random = assertOptionalFunction(options.random, 'options.random') ?? Math.random;
    this.#heartbeatMs = optionalPositive(options.heartbeatMs, 'options.heartbeatMs');
    this.#socketRetryMs = optionalPositive(options.socketRetryMs, 'options.socketRetryMs') ?? DEFAULT_SOCKET_RETRY_MS;
    this.#pollTimeoutMs = options.pollTimeoutMs;
    // Checked now: the poller that would reject it may only start much later, inside a socket callback.
    if (this.#pollTimeoutMs !== undefined && (!Number.isSafeInteger(this.#pollTimeoutMs) || this.#pollTimeoutMs < 0)) {
      throw new RangeError('options.pollTimeoutMs must be a non-negative integer');
    }
    this.#now = assertOptionalFunction(options.now, 'options.now') ?? Date.now;
    const onPosition = assertOptionalFunction(options.onPosition, 'options.onPosition');
    this.#feed = new FrameFeed(assertOptionalPosition(options.since, 'options.since'), (t, p) => this.emit(t, p), onPosition);
  }

  /** The last position processed, or null before the first `ready` when started without `since`. */
  get position(): number | null {
    return this.#feed.position;
  }

  /**
   * Sends an event over this stream's socket (docs/protocol.md, `send`): the same as
   * `PUT /rooms/:roomId/send/:type/:txnId` (RoomsApi.send) without an HTTP request. Resolves
   * with what that answers; rejects with the ParleyApiError it would (status, code, field,
   * retryAfterMs). When there is no ready socket (connecting, long-polling, closed), or the
   * socket drops before the answer, rejects with status 0 and code PARLEY_NETWORK: the event may
   * or may not have been written, so retry with the same `txnId` (here or over HTTP), which
   * answers the same event and never writes a second one.
   */
  send(roomId: string, type: string, txnId: string, content: Record<string, unknown>): Promise<SendResponse> {
    for (const [name, value] of [
      ['roomId', roomId],
      ['type', type],
      ['txnId', txnId],
    ] as const) {
      if (typeof value !== 'string' || value === '') return Promise.reject(new TypeError(`${name} must be a non-empty string`));
    }
    if (typeof content !== 'object' || content === null || Array.isArray(content)) {
      return Promise.reject(new TypeError('content must be an object'));
    }
    const conn = this.#conn;
    if (conn === null || !conn.ready || conn.ws.readyState !== OPEN) {
      return Promise.reject(notSent('the stream socket is not connected; retry with the same txnId'));
    }
    this.#nextSendId += 1;
    const id = `s${this.#nextSendId}`;
    return new Promise<SendResponse>((resolve, reject) => {
      conn.sends.set(id, { resolve, reject });
      try {
        conn.ws.send(JSON.stringify({ op: 'send', id, room_id: roomId, type, txn_id: txnId, content } satisfies ClientMessage));
      } catch (err) {
        conn.sends.delete(id);
        reject(notSent(`the send could not be written: ${err instanceof Error ? err.message : String(err)}`));
      }
    });
  }

  /** Connects. Separate from the constructor so listeners can be attached first. */
  start(): this {
    if (this.#state === 'closed') throw new Error('a closed ParleyStream cannot be restarted');
    if (this.#state === 'running') return this;
    this.#state = 'running';
    if (this.#longPoll === true || this.#WebSocket === undefined) this.#startPoller();
    else void this.#open();
    return this;
  }

  /** Stops for good: no reconnects, no more events after this `disconnected`. */
  close(): void {
    const wasRunning = this.#state === 'running';
    this.#state = 'closed';
    clearTimeout(this.#reconnectTimer);
    const conn = this.#conn;
    this.#conn = null;
    if (conn !== null) {
      stopTimers(conn);
      failSends(conn, 'the stream was closed before the send was answered');
      safeClose(conn.ws, 1000, 'closed by client');
    }
    this.#stopPoller();
    if (wasRunning) this.emit('disconnected', { code: 1000, reason: 'closed by client', willRetry: false });
  }

  // ---- socket lifecycle ----

  async #open(): Promise<void> {
    let token: string;
    try {
      token = await this.#token();
    } catch (err) {
      if (this.#state !== 'running') return;
      if (isDeadSession(err)) this.#revoke(err instanceof Error ? err.message : String(err), 401);
      // The refresh endpoint is unreachable: wait like any other failed connection.
      else this.#retry();
      return;
    }
    if (this.#state !== 'running') return;
    let ws: WebSocketLike;
    try {
      ws = new (this.#WebSocket as WebSocketConstructor)(streamUrl(this.#client.baseUrl));
    } catch (err) {
      this.#ended(null, 1006, err instanceof Error ? err.message : String(err));
      return;
    }
    const conn: Connection = { ws, hello: false, ready: false, intervalMs: this.#heartbeatMs ?? DEFAULT_HEARTBEAT_MS, sends: new Map() };
    this.#conn = conn;
    ws.addEventListener('open', () => {
      if (this.#conn === conn && this.#poller === null) this.emit('connected', { transport: 'websocket' });
    });
    ws.addEventListener('message', (event) => this.#onMessage(conn, token, (event as { data: unknown }).data));
    ws.addEventListener('close', (event) => {
      const { code, reason } = event as { code: number; reason: string };
      this.#onClose(conn, code, reason);
    });
    // A close event always follows; the listener exists because `ws` throws unheard errors.
    ws.addEventListener('error', () => {});
    this.#armWatchdog(conn);
  }

  /** The token to identify with, refreshed when about to expire or after AUTH_FAILED. */
  async #token(): Promise<string> {
    const session = this.#client.session;
    if (session === null) throw new ParleyApiError({ status: 401, code: 'PARLEY_MISSING_TOKEN', message: 'not logged in' });
    if (this.#refreshBeforeNext) {
      // Another caller may have refreshed since we sent the rejected token; then its successor is here already.
      const token = session.access_token === this.#sentToken ? (await this.#client.refresh()).access_token : session.access_token;
      this.#refreshBeforeNext = false;
      this.#refreshedForAuth = true;
      return token;
    }
    if (session.expires_at_ms - this.#now() < REFRESH_MARGIN_MS) return (await this.#client.refresh()).access_token;
    return session.access_token;
  }

  #onMessage(conn: Connection, token: string, data: unknown): void {
    if (this.#conn !== conn) return;
    this.#armWatchdog(conn);
    const m = parseServerMessage(data);
    if (typeof m === 'number') {
      this.#abandon(conn, m, m === StreamCloseCode.INVALID_JSON ? 'invalid JSON from server' : 'malformed message from server');
    } else if (m.op === 'hello') {
      this.#onHello(conn, token, m);
    } else if (m.op === 'frame') {
      const frame = parseFrame(m.frame);
      if (conn.hello && frame !== null) this.#feed.deliver([frame]);
      else this.#abandon(conn, StreamCloseCode.INVALID_MESSAGE, 'malformed or early frame');
    } else if (m.op === 'ready') {
      this.#onReady(conn, m);
    } else if (m.op === 'sent' || m.op === 'send_error') {
      this.#onSendAnswer(conn, m);
    }
    // heartbeat_ack only feeds the watchdog; unknown ops are ignored so a newer server can add some.
  }

  #onHello(conn: Connection, token: string, m: Record<string, unknown>): void {
    const serverMs = m.heartbeat_ms;
    if (conn.hello || typeof serverMs !== 'number' || !Number.isSafeInteger(serverMs) || serverMs <= 0) {
      this.#abandon(conn, StreamCloseCode.INVALID_MESSAGE, 'unexpected hello');
      return;
    }
    conn.hello = true;
    conn.intervalMs = Math.min(serverMs, this.#heartbeatMs ?? serverMs);
    const since = this.#feed.position;
    this.#sentToken = token;
    this.#send(conn, since === null ? { op: 'identify', token } : { op: 'identify', token, since });
    conn.heartbeat = setInterval(() => this.#send(conn, { op: 'heartbeat' }), conn.intervalMs);
    this.#armWatchdog(conn);
  }

  #onReady(conn: Connection, m: Record<string, unknown>): void {
    if (!conn.hello || conn.ready || !isPosition(m.position) || typeof m.reset !== 'boolean') {
      this.#abandon(conn, StreamCloseCode.INVALID_MESSAGE, 'unexpected ready');
      return;
    }
    conn.ready = true;
    this.#attempt = 0;
    this.#failuresBeforeReady = 0;
    this.#refreshedForAuth = false;
    const position = this.#feed.ready({ position: m.position, reset: m.reset });
    if (this.#poller !== null) {
      // A probe got through while long-polling: the socket takes over.
      this.#stopPoller();
      this.emit('connected', { transport: 'websocket' });
    }
    this.emit('ready', { position, reset: m.reset, transport: 'websocket' });
  }

  #onSendAnswer(conn: Connection, m: Record<string, unknown>): void {
    const pending = typeof m.id === 'string' ? conn.sends.get(m.id) : undefined;
    // An answer to nothing we sent (a newer server's, or a stray): ignored, like unknown ops.
    if (pending === undefined) return;
    conn.sends.delete(m.id as string);
    if (m.op === 'sent') {
      if (typeof m.event_id !== 'string' || (m.seq !== undefined && !isPosition(m.seq))) {
        pending.reject(notSent('malformed answer to a send; retry with the same txnId'));
        return;
      }
      pending.resolve({
        event_id: m.event_id,
        ...(m.seq === undefined ? {} : { seq: m.seq as number }),
        ...(typeof m.queued === 'boolean' ? { queued: m.queued } : {}),
      });
      return;
    }
    const error = (typeof m.error === 'object' && m.error !== null ? m.error : {}) as Record<string, unknown>;
    const status = typeof m.status === 'number' && Number.isInteger(m.status) ? m.status : 0;
    const retry = error.retry_after_ms;
    pending.reject(
      new ParleyApiError({
        status,
        code: typeof error.code === 'string' ? error.code : 'PARLEY_INTERNAL',
        message: typeof error.message === 'string' ? error.message : `send failed (${status})`,
        field: typeof error.field === 'string' ? error.field : undefined,
        retryAfterMs: typeof retry === 'number' && Number.isInteger(retry) && retry >= 0 ? retry : undefined,
      }),
    );
  }

  #send(conn: Connection, msg: ClientMessage): void {
    if (conn.ws.readyState === OPEN) conn.ws.send(JSON.stringify(msg));
  }

  // Any message proves the peer alive; silence for two intervals means it is not.
  #armWatchdog(conn: Connection): void {
    clearTimeout(conn.watchdog);
    conn.watchdog = setTimeout(() => this.#abandon(conn, 1006, 'heartbeat timeout'), 2 * conn.intervalMs);
  }

  /**
   * Gives up on a socket we no longer trust without waiting for its closing handshake (a
   * dead peer never answers one), and handles it as closed with `code`.
   */
  #abandon(conn: Connection, code: number, reason: string): void {
    if (this.#conn !== conn) return;
    this.#conn = null;
    stopTimers(conn);
    failSends(conn, `the stream socket was dropped (${reason}) before the send was answered; retry with the same txnId`);
    // 1006 cannot be sent (RFC 6455 §7.4.1); a dead peer gets no close frame at all.
    if (code === 1006) conn.ws.terminate?.();
    safeClose(conn.ws, code === 1006 ? 1000 : code, reason);
    this.#ended(conn, code, reason);
  }

  #onClose(conn: Connection, code: number, reason: string): void {
    // Sends on a replaced socket fail too (they are never answered on another one).
    failSends(conn, `the stream socket closed (${code}) before the send was answered; retry with the same txnId`);
    if (this.#conn !== conn) return;
    this.#conn = null;
    stopTimers(conn);
    this.#ended(conn, code, reason);
  }

  /** Decides what a closed connection means: stop, or reconnect (and how). */
  #ended(conn: Connection | null, code: number, reason: string): void {
    if (this.#state !== 'running') return;
    if (code === StreamCloseCode.REVOKED || (code === StreamCloseCode.AUTH_FAILED && this.#refreshedForAuth)) {
      this.#revoke(reason || 'the server rejected the token', code);
      return;
    }
    if (code === StreamCloseCode.AUTH_FAILED) this.#refreshBeforeNext = true;
    // Our position came from elsewhere (another server's database?): start afresh.
    if (code === StreamCloseCode.INVALID_POSITION) this.#feed.forget();
    if (!conn?.ready) this.#failuresBeforeReady += 1;
    if (this.#poller === null) this.emit('disconnected', { code, reason, willRetry: true });
    if (this.#longPoll === 'auto' && this.#poller === null && this.#failuresBeforeReady >= FAILURES_BEFORE_LONG_POLL) {
      this.#startPoller();
    }
    // The server ends a socket when the token it identified with is replaced (a refresh) or
    // expires. When this client already holds a newer token, come back at once with it.
    const session = this.#client.session;
    if (
      code === StreamCloseCode.AUTH_FAILED &&
      conn?.ready &&
      this.#poller === null &&
      session !== null &&
      session.access_token !== this.#sentToken
    ) {
      this.#reconnectTimer = setTimeout(() => void this.#open(), 0);
      return;
    }
    this.#retry();
  }

  #retry(): void {
    if (this.#poller !== null) {
      // Long-polling already keeps the app live; probe the socket quietly now and then.
      this.#reconnectTimer = setTimeout(() => void this.#open(), this.#socketRetryMs);
      return;
    }
    const delayMs = backoffDelay(this.#attempt, this.#backoff, this.#random);
    this.#attempt += 1;
    this.emit('reconnecting', { attempt: this.#attempt, delayMs });
    this.#reconnectTimer = setTimeout(() => void this.#open(), delayMs);
  }

  #revoke(reason: string, code: number): void {
    this.#state = 'closed';
    clearTimeout(this.#reconnectTimer);
    const conn = this.#conn;
    this.#conn = null;
    if (conn !== null) {
      // A socket probe still under way while the long-poll learned the session is dead.
      stopTimers(conn);
      failSends(conn, 'the session was revoked before the send was answered');
      safeClose(conn.ws, 1000, 'session revoked');
    }
    this.#stopPoller();
    this.emit('disconnected', { code, reason, willRetry: false });
    this.emit('revoked', { reason });
  }

  // ---- long-poll ----

  #startPoller(): void {
    const since = this.#feed.position;
    const poller = new SyncPoller({
      client: this.#client,
      ...(since === null ? {} : { since }),
      backoff: this.#backoff,
      random: this.#random,
      ...(this.#pollTimeoutMs === undefined ? {} : { timeoutMs: this.#pollTimeoutMs }),
    });
    // The poller's frames go through our feed, so a socket that takes over later (and
    // replays some of them) cannot emit any twice.
    const offs = [
      poller.on('frame', (frame) => this.#feed.deliver([frame])),
      poller.on('ready', (r) => this.emit('ready', { ...r, position: this.#feed.ready(r) })),
      poller.on('connected', (e) => this.emit('connected', e)),
      // Its final `disconnected` (willRetry false) comes from us, in #revoke or close().
      poller.on('disconnected', (e) => e.willRetry && this.emit('disconnected', e)),
      poller.on('reconnecting', (e) => this.emit('reconnecting', e)),
      poller.on('revoked', (e) => this.#revoke(e.reason, 401)),
    ];
    this.#poller = {
      poller,
      unsubscribe: () => {
        for (const off of offs) off();
      },
    };
    poller.start();
  }

  #stopPoller(): void {
    if (this.#poller === null) return;
    this.#poller.unsubscribe();
    this.#poller.poller.close();
    this.#poller = null;
  }
}

/** The message as an object with a string `op`, or the close code its fault deserves. */
function parseServerMessage(data: unknown): Record<string, unknown> | number {
  if (typeof data !== 'string') return StreamCloseCode.INVALID_MESSAGE;
  let msg: unknown;
  try {
    msg = JSON.parse(data);
  } catch {
    return StreamCloseCode.INVALID_JSON;
  }
  if (typeof msg !== 'object' || msg === null || typeof (msg as { op?: unknown }).op !== 'string') {
    return StreamCloseCode.INVALID_MESSAGE;
  }
  return msg as Record<string, unknown>;
}

function globalWebSocket(): WebSocketConstructor | undefined {
  const ctor = (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
  return typeof ctor === 'function' ? ctor : undefined;
}

/** The rejection of a send that may or may not have been written (no answer came). */
function notSent(message: string): ParleyApiError {
  return new ParleyApiError({ status: 0, code: 'PARLEY_NETWORK', message });
}

function failSends(conn: Connection, message: string): void {
  if (conn.sends.size === 0) return;
  const pending = [...conn.sends.values()];
  conn.sends.clear();
  for (const p of pending) p.reject(notSent(message));
}

function stopTimers(conn: Connection): void {
  clearInterval(conn.heartbeat);
  clearTimeout(conn.watchdog);
}

// close() throws on a socket that is already closing in some implementations; either way it is done with.
function safeClose(ws: WebSocketLike, code: number, reason: string): void {
  try {
    ws.close(code, reason);
  } catch {
    // nothing left to close
  }
}

function optionalPositive(value: unknown, name: string): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) throw new RangeError(`${name} must be a positive number`);
  return value;
}
