import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { vi } from 'vitest';
import { type WebSocket, WebSocketServer } from 'ws';

/**
 * A real HTTP + WebSocket server on 127.0.0.1 that a test scripts message by message, so
 * the stream client is exercised over real transport while the homeserver's own stream
 * endpoint is still being written. It knows nothing of the protocol: each test speaks it.
 */

export type HttpRoute = (
  req: IncomingMessage,
  body: string,
) => { status: number; body: unknown } | Promise<{ status: number; body: unknown }>;

/** The server's end of one stream connection. */
export class Peer {
  readonly messages: any[] = [];
  heartbeats = 0;
  ackHeartbeats = true;
  readonly closed: Promise<{ code: number; reason: string }>;

  constructor(readonly ws: WebSocket) {
    this.closed = new Promise((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
    ws.on('message', (data) => {
      const msg = JSON.parse(String(data));
      if (msg.op !== 'heartbeat') this.messages.push(msg);
      else {
        this.heartbeats += 1;
        if (this.ackHeartbeats) this.send({ op: 'heartbeat_ack' });
      }
    });
  }

  /** The next non-heartbeat message from the client. */
  async next(): Promise<any> {
    await vi.waitFor(
      () => {
        if (this.messages.length === 0) throw new Error('no message from the client yet');
      },
      { timeout: 5000, interval: 5 },
    );
    return this.messages.shift();
  }

  send(msg: unknown): void {
    this.ws.send(typeof msg === 'string' ? msg : JSON.stringify(msg));
  }

  /** Sends hello and returns the client's identify. */
  async handshake(heartbeatMs = 10_000): Promise<any> {
    this.send({ op: 'hello', heartbeat_ms: heartbeatMs, identify_timeout_ms: 10_000 });
    return this.next();
  }

  frame(position: number, kind = 'typing', data: unknown = { room_id: '!r:hs.test', user_ids: [] }): void {
    this.send({ op: 'frame', frame: { position, kind, data } });
  }

  ready(position: number, reset = false): void {
    this.send({ op: 'ready', user_id: '@a:hs.test', device_id: 'DEV', position, reset });
  }
}

export class ScriptedStreamServer {
  readonly peers: Peer[] = [];
  readonly routes = new Map<string, HttpRoute>();
  readonly requests: string[] = [];
  /** Refuse WebSocket upgrades (drop the TCP connection), as a hostile proxy would. */
  rejectUpgrades = false;
  #taken = 0;

  private constructor(
    private readonly http: Server,
    private readonly wss: WebSocketServer,
    readonly baseUrl: string,
  ) {}

  static async start(): Promise<ScriptedStreamServer> {
    const http = createServer();
    const wss = new WebSocketServer({ noServer: true });
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
    const { port } = http.address() as AddressInfo;
    const server = new ScriptedStreamServer(http, wss, `http://127.0.0.1:${port}`);
    http.on('request', (req, res) => void server.#route(req, res));
    http.on('upgrade', (req, socket, head) => {
      if (server.rejectUpgrades || req.url !== '/api/v1/stream') {
        socket.destroy();
        return;
      }
      wss.handleUpgrade(req, socket, head, (ws) => server.peers.push(new Peer(ws)));
    });
    return server;
  }

  /** The next connection the client opens (each is returned once). */
  async nextPeer(timeout = 5000): Promise<Peer> {
    await vi.waitFor(
      () => {
        if (this.peers.length <= this.#taken) throw new Error('the client has not connected again');
      },
      { timeout, interval: 5 },
    );
    return this.peers[this.#taken++] as Peer;
  }

  /** Number of connections the client opened that no test has taken yet. */
  get untakenPeers(): number {
    return this.peers.length - this.#taken;
  }

  async stop(): Promise<void> {
    for (const client of this.wss.clients) client.terminate();
    this.wss.close();
    this.http.closeAllConnections();
    await new Promise<void>((resolve) => this.http.close(() => resolve()));
  }

  async #route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let body = '';
    for await (const chunk of req) body += chunk;
    const key = `${req.method} ${new URL(req.url ?? '/', 'http://x').pathname}`;
    this.requests.push(`${req.method} ${req.url}`);
    const route = this.routes.get(key);
    const answer =
      route === undefined ? { status: 404, body: { error: { code: 'PARLEY_NOT_FOUND', message: key } } } : await route(req, body);
    res.writeHead(answer.status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(answer.body));
  }
}
