import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import {
  envelopeBodyBytes,
  parseRelayFrame,
  RELAY_CONNECT_PATH,
  RELAY_PROTOCOL_VERSION,
  type RelayFrame,
  type RelayLimits,
  type RelayRequestEnvelope,
  type RelayReservation,
  type RelayResponseEnvelope,
  ReservationLedger,
  TokenBucket,
} from '@parley/federation/relay';
import { checkAddressAndTime, parseAuthorization, verifyRequest } from '@parley/federation/transport';
import { type WebSocket, WebSocketServer } from 'ws';
import { ParleyError } from '../errors.js';
import type { FederationContext } from '../federation/setup.js';
import type { Logger } from '../logger.js';
import type { RelayMetrics } from './relay-metrics.js';

/**
 * The relay side of anchor relays (docs/protocol.md, "Anchor relays"): servers without an
 * inbound port reserve a slot here over an outbound WebSocket (`GET /federation/v1/relay/connect`,
 * signed like any federation request), and requests other servers send for them are carried
 * over it unchanged. Every count is bounded: reservations (total, per IP, per network), frames
 * (size), requests in flight, bytes and requests per second per reservation.
 */

/** WebSocket close codes the relay uses (4000–4999 are the application's). */
export const CLOSE = { refused: 4401, replaced: 4409, expired: 4408, protocol: 4400, shutdown: 4503 } as const;

const HANDSHAKE_TIMEOUT_MS = 15_000;
const PING_INTERVAL_MS = 20_000;
const RENEW_MIN_INTERVAL_MS = 10_000;
// JSON and base64url around the biggest body, and room for the other fields.
const frameCap = (limits: RelayLimits) => Math.ceil((limits.max_body_bytes * 4) / 3) + 64 * 1024;

interface Waiting {
  resolve: (response: RelayResponseEnvelope) => void;
  reject: (err: ParleyError) => void;
  timer: NodeJS.Timeout;
}

class Connection {
  readonly inFlight = new Map<string, Waiting>();
  expiresAt = 0;
  reserved = false;
  alive = true;
  nextId = 0;
  renewedAt = 0;
  bytesIn = 0;
  bytesOut = 0;
  forwarded = 0;
  readonly bytes: TokenBucket;
  readonly requests: TokenBucket;
  constructor(
    readonly key: string,
    readonly server: string,
    readonly ip: string,
    readonly ws: WebSocket,
    readonly connectedAt: number,
    limits: RelayLimits,
  ) {
    this.bytes = new TokenBucket(limits.reservation_bytes_per_second, limits.reservation_bytes_per_second * 2, connectedAt);
    this.requests = new TokenBucket(limits.reservation_requests_per_second, limits.reservation_requests_per_second * 2, connectedAt);
  }
}

export interface RelayHubOptions {
  fed: FederationContext;
  limits: RelayLimits;
  log: Logger;
  metrics: RelayMetrics;
}

export class RelayHub {
  readonly limits: RelayLimits;
  readonly #fed: FederationContext;
  readonly #log: Logger;
  readonly #metrics: RelayMetrics;
  readonly #wss: WebSocketServer;
  readonly #ledger: ReservationLedger;
  /** The connection that holds each server's reservation. */
  readonly #reserved = new Map<string, Connection>();
  /** Connections still proving who they are (their key may be fetched over them). */
  readonly #pending = new Map<string, Connection>();
  #seq = 0;
  readonly #sweep: NodeJS.Timeout;
  /**
   * Called with a verified envelope for a server that holds no reservation here (store-and-forward,
   * docs/protocol.md); without it such a request answers 503 PARLEY_RELAY_NOT_CONNECTED.
   */
  storeAndForward?: (origin: string, destination: string, envelope: RelayRequestEnvelope) => Promise<{ status: number; body: unknown }>;

  constructor(options: RelayHubOptions) {
    this.#fed = options.fed;
    this.limits = options.limits;
    this.#log = options.log;
    this.#metrics = options.metrics;
    this.#ledger = new ReservationLedger(options.limits);
    this.#wss = new WebSocketServer({ noServer: true, maxPayload: frameCap(options.limits), perMessageDeflate: false });
    this.#sweep = setInterval(() => this.#heartbeat(), PING_INTERVAL_MS);
    this.#sweep.unref();
  }

  reservedCount(): number {
    return this.#reserved.size;
  }

  /** Reservations held here, for the admin view. */
  list(): Array<{
    server: string;
    ip: string;
    connected_at: number;
    expires_at: number;
    in_flight: number;
    forwarded: number;
    bytes_in: number;
    bytes_out: number;
  }> {
    return [...this.#reserved.values()].map((c) => ({
      server: c.server,
      ip: c.ip,
      connected_at: c.connectedAt,
      expires_at: c.expiresAt,
      in_flight: c.inFlight.size,
      forwarded: c.forwarded,
      bytes_in: c.bytesIn,
      bytes_out: c.bytesOut,
    }));
  }

  /** Whether `server` holds a reservation here, or is proving one (its key fetch goes over it). */
  has(server: string): boolean {
    return this.#reserved.has(server) || this.#pending.has(server);
  }

  isReserved(server: string): boolean {
    return this.#reserved.has(server);
  }

  #connectionFor(server: string): Connection | undefined {
    return this.#reserved.get(server) ?? this.#pending.get(server);
  }

  /**
   * Takes an HTTP upgrade on the federation listener. Answers false for another path (not ours).
   * The checks that need no key come first (header, addressed to us, time, domain policy,
   * reservation caps); the signature is checked once the socket is open, because the key of a
   * server without an inbound port can only be fetched over that very connection.
   */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean {
    const url = req.url ?? '';
    if (url !== RELAY_CONNECT_PATH) return false;
    const ip = req.socket.remoteAddress ?? 'unknown';
    const refuse = (status: number, code: string, reason: string) => {
      this.#metrics.refusals.inc({ code });
      this.#log.info({ ip, code, reason }, 'relay: reservation refused');
      const body = JSON.stringify({ error: { code, message: reason } });
      socket.end(
        `HTTP/1.1 ${status} ${status === 429 ? 'Too Many Requests' : status === 403 ? 'Forbidden' : status === 401 ? 'Unauthorized' : 'Bad Request'}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
      );
      return true;
    };
    if (req.method !== 'GET') return refuse(400, 'PARLEY_INVALID_PARAM', 'the relay connection is GET with an Upgrade to websocket');
    const parsed = parseAuthorization(req.headers.authorization);
    if (!parsed.ok) return refuse(401, parsed.code, parsed.reason);
    const timing = { now: this.#fed.clock.now(), windowMs: this.#fed.config.request_time_window_ms };
    const early = checkAddressAndTime(parsed.auth, this.#fed.serverName, timing);
    if (early) return refuse(401, early.code, early.reason);
    const server = parsed.auth.origin;
    const blocked = this.#fed.refuse(server);
    if (blocked) return refuse(403, 'PARLEY_FORBIDDEN', blocked);
    if (this.#pending.has(server)) return refuse(429, 'PARLEY_RELAY_HANDSHAKE_PENDING', `${server} is already connecting`);
    const capped = this.#ledger.check(ip, this.#reserved.get(server)?.key);
    if (capped) return refuse(capped.code === 'PARLEY_RELAY_NETWORK_LIMIT' ? 403 : 429, capped.code, capped.reason);
    const key = `${server}#${++this.#seq}`;
    this.#ledger.add(key, ip);
    // However the connection ends (refused, dropped during the upgrade, closed later), its slot is freed.
    socket.once('close', () => this.#ledger.remove(key));
    this.#wss.handleUpgrade(req, socket, head, (ws) => {
      this.#open(ws, key, server, ip, parsed.auth).catch((err) =>
        this.#log.warn({ server, err: (err as Error).message }, 'relay: handshake'),
      );
    });
    return true;
  }

  async #open(ws: WebSocket, key: string, server: string, ip: string, auth: Parameters<typeof verifyRequest>[0]): Promise<void> {
    const conn = new Connection(key, server, ip, ws, this.#fed.clock.now(), this.limits);
    this.#pending.set(server, conn);
    ws.on('message', (data, isBinary) => this.#onFrame(conn, data as Buffer, isBinary));
    ws.on('pong', () => {
      conn.alive = true;
    });
    ws.on('close', () => this.#closed(conn));
    ws.on('error', () => {});
    const timer = setTimeout(() => ws.close(CLOSE.refused, 'handshake timeout'), HANDSHAKE_TIMEOUT_MS);
    const result = await verifyRequest(
      auth,
      { method: 'GET', uri: RELAY_CONNECT_PATH, destination: this.#fed.serverName },
      (origin, keyId) => this.#fed.keyStore.getKey(origin, keyId, { requester: ip }),
      { now: this.#fed.clock.now(), windowMs: this.#fed.config.request_time_window_ms },
    ).finally(() => clearTimeout(timer));
    if (this.#pending.get(server) === conn) this.#pending.delete(server);
    if (ws.readyState !== ws.OPEN) return;
    if (!result.ok) {
      this.#metrics.refusals.inc({ code: result.code });
      this.#send(conn, { type: 'error', code: result.code, reason: result.reason });
      ws.close(CLOSE.refused, result.code);
      return;
    }
    const previous = this.#reserved.get(server);
    this.#reserved.set(server, conn);
    if (previous && previous !== conn) {
      this.#send(previous, { type: 'error', code: 'PARLEY_RELAY_REPLACED', reason: 'a newer connection holds this reservation' });
      previous.ws.close(CLOSE.replaced, 'replaced');
    }
    conn.reserved = true;
    this.#metrics.reservations.set(this.#reserved.size);
    this.#renew(conn);
    this.#metrics.reservationEvents.inc({ event: 'reserved' });
    this.#log.info({ server, ip, expires_at: conn.expiresAt }, 'relay: reservation held');
  }

  #renew(conn: Connection): void {
    conn.expiresAt = this.#fed.clock.now() + this.limits.reservation_ttl_ms;
    const reservation: RelayReservation = {
      relay: this.#fed.serverName,
      server: conn.server,
      expires_at: conn.expiresAt,
      limits: {
        max_body_bytes: this.limits.max_body_bytes,
        bytes_per_second: this.limits.reservation_bytes_per_second,
        requests_per_second: this.limits.reservation_requests_per_second,
        max_in_flight: this.limits.max_in_flight,
      },
    };
    this.#send(conn, { type: 'reserved', reservation });
  }

  #onFrame(conn: Connection, data: Buffer, isBinary: boolean): void {
    const frame = isBinary ? undefined : parseRelayFrame(data.toString('utf8'), this.limits.max_body_bytes);
    if (!frame?.ok) {
      const reason = frame ? frame.reason : 'binary frames are not part of the protocol';
      this.#send(conn, { type: 'error', code: 'PARLEY_RELAY_BAD_FRAME', reason });
      conn.ws.close(CLOSE.protocol, 'bad frame');
      return;
    }
    const f = frame.value;
    if (f.type === 'renew' && conn.reserved) {
      // One renewal per RENEW_MIN_INTERVAL_MS: a renew is answered with a frame, so it is not a free amplifier.
      const now = this.#fed.clock.now();
      if (now - conn.renewedAt < RENEW_MIN_INTERVAL_MS) return;
      conn.renewedAt = now;
      this.#renew(conn);
      this.#metrics.reservationEvents.inc({ event: 'renewed' });
    } else if (f.type === 'response') {
      const waiting = conn.inFlight.get(f.id);
      if (!waiting) return; // answered after its deadline: dropped
      conn.inFlight.delete(f.id);
      clearTimeout(waiting.timer);
      const n = envelopeBodyBytes(f.response);
      conn.bytesOut += n;
      conn.bytes.take(n, this.#fed.clock.now());
      this.#metrics.bytes.inc({ direction: 'response' }, n);
      waiting.resolve(f.response);
    } else if (f.type !== 'renew') {
      this.#send(conn, { type: 'error', code: 'PARLEY_RELAY_BAD_FRAME', reason: `a reserving server does not send ${f.type}` });
      conn.ws.close(CLOSE.protocol, 'bad frame');
    }
  }

  /**
   * Carries a verified envelope to its reserved destination and waits for the answer. Rejects
   * with a ParleyError carrying a PARLEY_RELAY_* code: 503 not connected, 429 over a limit,
   * 504 no answer in time. `pending`: also over a connection whose handshake is under way (for
   * fetching its key document during that handshake).
   */
  forward(envelope: RelayRequestEnvelope, options: { pending?: boolean } = {}): Promise<RelayResponseEnvelope> {
    // A connection still proving its key only carries our own fetch of that key, never others' traffic.
    const conn = options.pending ? this.#connectionFor(envelope.destination) : this.#reserved.get(envelope.destination);
    if (!conn || conn.ws.readyState !== conn.ws.OPEN) {
      return Promise.reject(
        this.#refusal(503, 'PARLEY_RELAY_NOT_CONNECTED', `${envelope.destination} is not connected to this relay now; retry later`),
      );
    }
    const now = this.#fed.clock.now();
    if (conn.inFlight.size >= this.limits.max_in_flight) {
      return Promise.reject(
        this.#refusal(429, 'PARLEY_RELAY_BUSY', `${this.limits.max_in_flight} requests to ${conn.server} are already waiting`),
      );
    }
    if (!conn.requests.take(1, now)) {
      return Promise.reject(
        this.#refusal(
          429,
          'PARLEY_RELAY_RATE_LIMITED',
          `more than ${this.limits.reservation_requests_per_second} requests/s to ${conn.server}`,
        ),
      );
    }
    const n = envelopeBodyBytes(envelope);
    if (!conn.bytes.take(n, now)) {
      return Promise.reject(
        this.#refusal(429, 'PARLEY_RELAY_BYTE_LIMITED', `more than ${this.limits.reservation_bytes_per_second} bytes/s to ${conn.server}`),
      );
    }
    conn.bytesIn += n;
    conn.forwarded++;
    this.#metrics.bytes.inc({ direction: 'request' }, n);
    this.#metrics.forwarded.inc();
    const id = String(++conn.nextId);
    return new Promise<RelayResponseEnvelope>((resolve, reject) => {
      const timer = setTimeout(() => {
        conn.inFlight.delete(id);
        reject(this.#refusal(504, 'PARLEY_RELAY_TIMEOUT', `${conn.server} did not answer within ${this.limits.request_timeout_ms} ms`));
      }, this.limits.request_timeout_ms);
      conn.inFlight.set(id, { resolve, reject, timer });
      this.#send(conn, { type: 'request', id, request: envelope });
    });
  }

  #refusal(status: number, code: string, reason: string): ParleyError {
    this.#metrics.refusals.inc({ code });
    return new ParleyError(status, code as never, reason);
  }

  #send(conn: Connection, frame: RelayFrame): void {
    if (conn.ws.readyState === conn.ws.OPEN) conn.ws.send(JSON.stringify(frame));
  }

  #closed(conn: Connection): void {
    for (const [id, waiting] of conn.inFlight) {
      clearTimeout(waiting.timer);
      waiting.reject(
        new ParleyError(503, 'PARLEY_RELAY_NOT_CONNECTED' as never, `${conn.server} disconnected before answering; retry later`),
      );
      conn.inFlight.delete(id);
    }
    this.#ledger.remove(conn.key);
    if (this.#pending.get(conn.server) === conn) this.#pending.delete(conn.server);
    if (this.#reserved.get(conn.server) === conn) {
      this.#reserved.delete(conn.server);
      this.#metrics.reservations.set(this.#reserved.size);
      this.#metrics.reservationEvents.inc({ event: 'closed' });
      this.#log.info({ server: conn.server }, 'relay: reservation closed');
    }
  }

  // Pings every connection; one that did not answer the last ping, or whose reservation ran out, is closed.
  #heartbeat(): void {
    const now = this.#fed.clock.now();
    for (const conn of [...this.#reserved.values(), ...this.#pending.values()]) {
      if (conn.reserved && conn.expiresAt <= now) {
        this.#send(conn, { type: 'error', code: 'PARLEY_RELAY_EXPIRED', reason: 'the reservation was not renewed' });
        conn.ws.close(CLOSE.expired, 'expired');
      } else if (!conn.alive) {
        conn.ws.terminate();
      } else {
        conn.alive = false;
        conn.ws.ping();
      }
    }
  }

  async close(): Promise<void> {
    clearInterval(this.#sweep);
    for (const conn of [...this.#reserved.values(), ...this.#pending.values()]) conn.ws.close(CLOSE.shutdown, 'relay stopping');
    await new Promise<void>((resolve) => this.#wss.close(() => resolve()));
  }
}

export { RELAY_PROTOCOL_VERSION };
