import type { SigningKey } from '@parley/federation/keys';
import {
  parseRelayFrame,
  RELAY_CONNECT_PATH,
  RELAY_PROTOCOL_VERSION,
  type RelayFrame,
  type RelayRequestEnvelope,
  type RelayReservation,
  type RelayResponseEnvelope,
} from '@parley/federation/relay';
import { AddressPolicy, formatHostPort, guardedConnector, signRequest, systemLookup } from '@parley/federation/transport';
import WebSocket from 'ws';
import type { FederationContext } from '../federation/setup.js';
import type { Logger } from '../logger.js';
import type { RelayMetrics } from './relay-metrics.js';

/**
 * The reserving side of anchor relays (docs/protocol.md, "Anchor relays"): a server without an
 * inbound port keeps one outbound WebSocket to its relay (`relay.use`), renews its reservation
 * at half its lifetime, answers every request the relay carries by handing it to its own
 * federation app (which authenticates it as any inbound request), and reconnects with backoff
 * (1 s doubling to 60 s, with jitter) whenever the connection drops or the relay restarts.
 */

const BACKOFF_MIN_MS = 1_000;
const BACKOFF_MAX_MS = 60_000;
const HANDSHAKE_TIMEOUT_MS = 10_000;
// A reserved server answers at most this many carried requests at once; the relay caps it too.
const MAX_CONCURRENT = 256;
// The relay pings every 20 s: a connection silent for this long is dead (a relay host gone without a FIN).
const SILENCE_LIMIT_MS = 65_000;

export type RelayDispatch = (envelope: RelayRequestEnvelope, maxBodyBytes: number) => Promise<RelayResponseEnvelope>;

export interface OwnReservationState {
  relay: string;
  status: 'connecting' | 'reserved' | 'disconnected' | 'stopped';
  expires_at: number | null;
  connected_since: number | null;
  connects: number;
  carried: number;
  last_error: string | null;
}

export interface RelayReserverOptions {
  relay: string;
  fed: FederationContext;
  identity: SigningKey;
  dispatch: RelayDispatch;
  log: Logger;
  metrics: RelayMetrics;
  /** Told when the reservation is taken or lost, so the key document can say so. */
  onChange?: () => void;
  /**
   * Told each time a reservation is taken after none was held (at start, after a drop or a
   * relay restart): servers that backed off while we were unreachable should retry now.
   */
  onReserved?: () => void;
}

export class RelayReserver {
  readonly #o: RelayReserverOptions;
  #ws: WebSocket | undefined;
  #reservation: RelayReservation | undefined;
  #renewTimer: NodeJS.Timeout | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  #backoff = BACKOFF_MIN_MS;
  #stopped = false;
  #active = 0;
  readonly #state: OwnReservationState;

  constructor(options: RelayReserverOptions) {
    this.#o = options;
    this.#state = {
      relay: options.relay,
      status: 'disconnected',
      expires_at: null,
      connected_since: null,
      connects: 0,
      carried: 0,
      last_error: null,
    };
  }

  state(): OwnReservationState {
    return { ...this.#state };
  }

  /** `{ via, until }` for our key document while the reservation holds. */
  advert(): { via: string; until: number } | undefined {
    const r = this.#reservation;
    return r && r.expires_at > this.#o.fed.clock.now() ? { via: r.relay, until: r.expires_at } : undefined;
  }

  start(): void {
    this.#stopped = false;
    this.#connect();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#state.status = 'stopped';
    clearTimeout(this.#renewTimer);
    clearTimeout(this.#retryTimer);
    const ws = this.#ws;
    if (ws && ws.readyState !== ws.CLOSED) {
      await new Promise<void>((resolve) => {
        ws.once('close', () => resolve());
        ws.close(1000, 'stopping');
        setTimeout(() => {
          ws.terminate();
          resolve();
        }, 2000).unref();
      });
    }
  }

  #connect(): void {
    if (this.#stopped) return;
    this.#state.status = 'connecting';
    this.#state.connects++;
    this.#open().catch((err) => this.#lost((err as Error).message));
  }

  async #open(): Promise<void> {
    const { fed, relay, identity } = this.#o;
    const target = await fed.client.discovery.resolve(relay);
    // The relay's certificate is pinned from its key document (fetched directly: a relay has a port).
    if (!(await fed.keyStore.prefetch(relay)) || !fed.keyStore.tlsPins(relay)?.length) {
      throw new Error(`cannot fetch the key document of ${relay}: ${fed.keyStore.lastFailure(relay) ?? 'no certificate pinned'}`);
    }
    const connector = guardedConnector(
      { destination: relay, host: target.host, port: target.port, tlsServername: target.tlsServername },
      {
        policy: new AddressPolicy({ allow: fed.config.allow_private }),
        lookup: systemLookup,
        pins: () => fed.keyStore.tlsPins(relay),
        trust: 'verify',
        ca: undefined,
        timeoutMs: HANDSHAKE_TIMEOUT_MS,
        log: { debug() {}, info() {}, warn() {} },
      },
    );
    const authorization = signRequest(
      { method: 'GET', uri: RELAY_CONNECT_PATH, origin: fed.serverName, destination: relay, ts: fed.clock.now() },
      identity,
    );
    const maxPayload = 64 * 1024 * 1024;
    const ws = new WebSocket(`wss://${formatHostPort(target.tlsServername, target.port)}${RELAY_CONNECT_PATH}`, {
      headers: { authorization },
      handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
      maxPayload,
      perMessageDeflate: false,
      // Every socket goes through the federation connector: SSRF guard on the resolved address, pinned certificate.
      createConnection: ((_opts: unknown, callback: (err: Error | null, socket?: unknown) => void) => {
        connector({} as never, (err, socket) => callback(err, socket ?? undefined));
        return undefined;
      }) as never,
    });
    this.#ws = ws;
    let heard = Date.now();
    const watchdog = setInterval(() => {
      if (Date.now() - heard > SILENCE_LIMIT_MS) ws.terminate();
    }, SILENCE_LIMIT_MS / 3);
    watchdog.unref();
    ws.on('ping', () => {
      heard = Date.now();
    });
    ws.on('message', (data, isBinary) => {
      heard = Date.now();
      this.#onFrame(ws, data as Buffer, isBinary);
    });
    ws.on('unexpected-response', (_req, res) => {
      let text = '';
      res.on('data', (chunk: Buffer) => {
        if (text.length < 2048) text += chunk.toString('utf8');
      });
      res.on('end', () => {
        const code = /"code":"([A-Z_]{1,64})"/.exec(text)?.[1] ?? '';
        this.#state.last_error = `the relay answered ${res.statusCode} ${code}`.trim();
        ws.terminate();
      });
    });
    ws.on('error', (err) => {
      this.#state.last_error ??= err.message;
    });
    ws.on('close', (code, reason) => {
      clearInterval(watchdog);
      if (this.#ws === ws) this.#lost(this.#state.last_error ?? `closed (${code} ${reason.toString().slice(0, 100)})`);
    });
  }

  #onFrame(ws: WebSocket, data: Buffer, isBinary: boolean): void {
    const max = this.#reservation?.limits.max_body_bytes ?? 64 * 1024 * 1024;
    const frame = isBinary ? undefined : parseRelayFrame(data.toString('utf8'), max);
    if (!frame?.ok) {
      this.#o.log.warn({ relay: this.#o.relay, reason: frame?.reason ?? 'binary frame' }, 'relay: bad frame from the relay');
      ws.close(4400, 'bad frame');
      return;
    }
    const f = frame.value;
    if (f.type === 'reserved') this.#reserved(ws, f.reservation);
    else if (f.type === 'request') this.#carry(ws, f.id, f.request, max);
    else if (f.type === 'error') {
      this.#state.last_error = `${f.code}: ${f.reason}`;
      this.#o.log.warn({ relay: this.#o.relay, code: f.code, reason: f.reason }, 'relay: the relay refused or ended the reservation');
    }
  }

  #reserved(ws: WebSocket, reservation: RelayReservation): void {
    const { fed, relay, log, metrics } = this.#o;
    if (reservation.relay !== relay || reservation.server !== fed.serverName) {
      log.warn({ relay }, 'relay: reservation names another relay or server');
      ws.close(4400, 'wrong reservation');
      return;
    }
    const first = this.#state.status !== 'reserved';
    this.#reservation = reservation;
    this.#backoff = BACKOFF_MIN_MS;
    this.#state.status = 'reserved';
    this.#state.expires_at = reservation.expires_at;
    this.#state.last_error = null;
    if (first) this.#state.connected_since = fed.clock.now();
    metrics.ownReservation.set({ relay }, 1);
    if (first) log.info({ relay, expires_at: reservation.expires_at }, 'relay: reservation held');
    if (first) this.#o.onReserved?.();
    clearTimeout(this.#renewTimer);
    const renewIn = Math.max(1_000, Math.floor((reservation.expires_at - fed.clock.now()) / 2));
    this.#renewTimer = setTimeout(() => {
      if (ws.readyState === ws.OPEN) ws.send(JSON.stringify({ type: 'renew' } satisfies RelayFrame));
    }, renewIn);
    this.#renewTimer.unref();
    this.#o.onChange?.();
  }

  #carry(ws: WebSocket, id: string, request: RelayRequestEnvelope, max: number): void {
    const send = (response: RelayResponseEnvelope) => {
      if (ws.readyState === ws.OPEN) ws.send(JSON.stringify({ type: 'response', id, response } satisfies RelayFrame));
    };
    if (request.destination !== this.#o.fed.serverName) {
      send(errorResponse(421, 'PARLEY_FED_WRONG_DESTINATION', `this is ${this.#o.fed.serverName}, not ${request.destination}`));
      return;
    }
    if (this.#active >= MAX_CONCURRENT) {
      send(errorResponse(503, 'PARLEY_UNAVAILABLE', 'too many relayed requests at once; retry'));
      return;
    }
    this.#active++;
    this.#state.carried++;
    this.#o
      .dispatch(request, max)
      .then(send, (err: Error) => send(errorResponse(502, 'PARLEY_UNAVAILABLE', `the request could not be handled: ${err.message}`)))
      .finally(() => {
        this.#active--;
      });
  }

  #lost(reason: string): void {
    const { relay, log, metrics } = this.#o;
    this.#ws = undefined;
    clearTimeout(this.#renewTimer);
    const had = this.#reservation !== undefined;
    this.#reservation = undefined;
    this.#state.expires_at = null;
    this.#state.connected_since = null;
    this.#state.last_error = reason;
    metrics.ownReservation.set({ relay }, 0);
    if (had) this.#o.onChange?.();
    if (this.#stopped) return;
    this.#state.status = 'disconnected';
    const delay = Math.round(this.#backoff * (0.5 + Math.random() / 2));
    this.#backoff = Math.min(BACKOFF_MAX_MS, this.#backoff * 2);
    log.warn({ relay, reason, retry_in_ms: delay }, 'relay: no reservation; reconnecting');
    this.#retryTimer = setTimeout(() => this.#connect(), delay);
    this.#retryTimer.unref();
  }
}

export function errorResponse(status: number, code: string, message: string): RelayResponseEnvelope {
  return {
    v: RELAY_PROTOCOL_VERSION,
    status,
    content_type: 'application/json',
    body: Buffer.from(JSON.stringify({ error: { code, message } })).toString('base64url'),
  };
}
