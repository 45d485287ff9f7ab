/**
 * A scripted hostile homeserver for federation tests.
 *
 * It is a real peer: HTTPS on loopback with its own self-signed certificate, a signed key
 * document (`GET /federation/v1/keys`) that lists that certificate, an Ed25519 signing key,
 * and real signed requests out (`push()`, through the federation library's client). Rooms it
 * hosts (`createRoom()`) have genuine chains: every event and record it makes is validly
 * signed. What it says is up to the test: every route can be scripted to lie.
 *
 *   const evil = await startHostileServer();                 // 'evil.test' on 127.0.0.1:<port>
 *   const hs = await startTestServer({ server_name: 'hs2.test',
 *     federation: { static_servers: { [evil.name]: evil.address } } });
 *   evil.addPeer('hs2.test', hs.federation!.port, hs.federation!.context.tls.fingerprint);
 *   const room = evil.createRoom();                          // create, creator's join, roles, join rules, visibility
 *   await alice.rooms.join(room.id);                         // honest by default: join answers the whole chain
 *   evil.script('GET', /\/events/, () => json({ entries: [room.entries[0]] }));   // repeat an old entry forever
 *   evil.script('GET', /\/events/, () => json({ entries: [] }));                   // withhold
 *   evil.script('GET', /\/events/, () => json({ entries: room.range(1, 5000) }));  // flood
 *   evil.script('GET', /\/events/, () => json({ entries: [b, a] }));               // reorder
 *   evil.script('GET', /\/events/, () => slow(5_000, json({ entries: [] })));      // answer slowly
 *   evil.script('POST', /\/join$/, () => endless());         // an endless body
 *   evil.script('POST', /\/join$/, () => hold());            // never answer (until close())
 *   evil.count('GET', /\/events/)                            // how many such requests arrived
 *
 * Replies: `json(body, status?)`, `huge(bytes)` (a body of that length, streamed; never valid
 * JSON), `endless()` (streams until the peer hangs up), `hold()` (answers nothing until the
 * test calls `release()` or closes the server), `slow(ms, reply)` (waits, then answers). A
 * script returning `undefined` falls through to the honest behaviour, so a script can lie only
 * sometimes (e.g. from the third request on). `bytesSent` counts every body byte written, so a
 * test can prove a peer stopped reading.
 *
 * Scripts see requests unverified: the harness is the attacker and needs no authentication
 * of its victims. Its clock is the real one. It can also play an honest participant against
 * a real host (`request()`, `signFor()`), as the L7 test does. Used by
 * federation-hostile-host, federation-hostile-join and federation-server-visibility tests.
 */
import type { ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { eventId as eventIdOf, recordHash, signEvent, signRecord } from '@parley/federation/events';
import { buildKeyDocument, generateSigningKey, type SigningKey } from '@parley/federation/keys';
import { defaultRoles } from '@parley/federation/room';
import { generateSelfSignedCertificate } from '@parley/federation/tls';
import { AddressPolicy, FederationClient } from '@parley/federation/transport';
import type { RoomEvent, SeqRecord } from '@parley/schemas';
import type { Clock } from '../../src/services/clock.js';
import { startTestServer, type TestServer } from './server.js';

export interface HostileEntry {
  event: RoomEvent;
  record: SeqRecord;
  meta?: { visibility?: string; redacted_by?: string | null };
}

export interface SeenRequest {
  method: string;
  path: string;
  origin: string | null;
  body: unknown;
}

export type Reply =
  | { kind: 'json'; status: number; body: unknown; headers?: Record<string, string> }
  | { kind: 'huge'; bytes: number }
  | { kind: 'endless' }
  | { kind: 'hold' }
  | { kind: 'slow'; ms: number; then: Reply };

export const json = (body: unknown, status = 200, headers?: Record<string, string>): Reply => ({ kind: 'json', status, body, headers });
export const huge = (bytes: number): Reply => ({ kind: 'huge', bytes });
export const endless = (): Reply => ({ kind: 'endless' });
export const hold = (): Reply => ({ kind: 'hold' });
export const slow = (ms: number, then: Reply): Reply => ({ kind: 'slow', ms, then });

type Script = (req: SeenRequest, match: RegExpMatchArray) => Reply | undefined | Promise<Reply | undefined>;

/** A room hosted by the hostile server, with a genuine signed chain. */
export class HostileRoom {
  readonly entries: HostileEntry[] = [];
  private lamport = 0;

  constructor(
    readonly id: string,
    private readonly server: HostileServer,
  ) {}

  get head(): HostileEntry | undefined {
    return this.entries.at(-1);
  }

  /** Signs an event as the hostile server's own user (`@mallory:<name>` by default). */
  sign(type: string, content: Record<string, unknown>, options: { stateKey?: string; sender?: string } = {}): RoomEvent {
    const sender = options.sender ?? this.server.user;
    return signEvent(
      {
        room_id: this.id,
        type,
        ...(options.stateKey !== undefined ? { state_key: options.stateKey } : {}),
        sender,
        origin: this.server.name,
        origin_ts: Date.now(),
        lamport: ++this.lamport,
        content,
      },
      this.server.name,
      this.server.key,
    ).event;
  }

  /** A validly signed record naming `eventId` at `seq` linking to `prev` (any of them may be a lie); not appended. */
  record(seq: number, prev: string | null, eventId: string): SeqRecord {
    return signRecord({ room_id: this.id, seq, event_id: eventId, prev, host_ts: Date.now() }, this.server.name, this.server.key);
  }

  /** Sequences an (already signed) event: appends it to the genuine chain. */
  append(event: RoomEvent, meta?: HostileEntry['meta']): HostileEntry {
    const seq = this.entries.length + 1;
    const prev = this.head ? recordHash(this.head.record) : null;
    const entry: HostileEntry = { event, record: this.record(seq, prev, eventIdOf(event)), ...(meta ? { meta } : {}) };
    this.entries.push(entry);
    return entry;
  }

  /** Appends a message from the hostile server's user. */
  message(body: string): HostileEntry {
    return this.append(this.sign('room.message', { body }));
  }

  /** Entries [from, from + limit) of the genuine chain. */
  range(from: number, limit: number): HostileEntry[] {
    return this.entries.slice(Math.max(0, from - 1), Math.max(0, from - 1) + limit);
  }
}

export class HostileServer {
  readonly user: string;
  readonly requests: SeenRequest[] = [];
  readonly rooms = new Map<string, HostileRoom>();
  /** Body bytes written by every reply so far. */
  bytesSent = 0;
  private readonly scripts: Array<{ method: string; path: RegExp; script: Script }> = [];
  private readonly peers = new Map<string, { address: string; fingerprint: string }>();
  private readonly held = new Set<() => void>();
  private client: FederationClient | null = null;

  constructor(
    readonly name: string,
    readonly key: SigningKey,
    readonly tls: { certPem: string; keyPem: string; fingerprint: string },
    private readonly http: Server,
  ) {
    this.user = `@mallory:${name}`;
  }

  get address(): string {
    return `127.0.0.1:${(this.http.address() as AddressInfo).port}`;
  }

  /** Lets the harness push to a real homeserver (its federation port and TLS fingerprint). */
  addPeer(name: string, port: number, fingerprint: string): void {
    this.peers.set(name, { address: `127.0.0.1:${port}`, fingerprint });
    void this.client?.close();
    this.client = null;
  }

  /** Scripts the answer to requests matching `method` and `path`; later scripts win. */
  script(method: string, path: RegExp, script: Script): void {
    this.scripts.unshift({ method, path, script });
  }

  /** Forgets every script: honest again. */
  reset(): void {
    this.scripts.length = 0;
  }

  count(method: string, path: RegExp): number {
    return this.requests.filter((r) => r.method === method && path.test(r.path)).length;
  }

  /** Answers every held request (with a 503) now. */
  release(): void {
    for (const wake of [...this.held]) wake();
  }

  get heldCount(): number {
    return this.held.size;
  }

  /** A public room with a genuine chain: create, the creator's join, roles, join rules, history visibility. */
  createRoom(options: { historyVisibility?: string; localpart?: string } = {}): HostileRoom {
    const id = `!${options.localpart ?? Math.random().toString(36).slice(2, 14)}:${this.name}`;
    const room = new HostileRoom(id, this);
    this.rooms.set(id, room);
    const me = this.user;
    room.append(room.sign('room.create', { creator: me, kind: 'room', version: 1 }, { stateKey: '' }));
    room.append(room.sign('room.member', { membership: 'join', displayname: 'Mallory' }, { stateKey: me }));
    room.append(room.sign('room.roles', defaultRoles(me) as unknown as Record<string, unknown>, { stateKey: '' }));
    room.append(room.sign('room.join_rules', { join_rule: 'public' }, { stateKey: '' }));
    room.append(room.sign('room.history_visibility', { history_visibility: options.historyVisibility ?? 'shared' }, { stateKey: '' }));
    return room;
  }

  /** PUT /federation/v1/send to a peer, signed with this server's key; answers the per-event results. */
  async push(
    destination: string,
    entries: unknown[],
    edus: unknown[] = [],
    txnId = Math.random().toString(36).slice(2),
  ): Promise<Record<string, { error?: string }>> {
    const res = await this.outbound().request({
      destination,
      method: 'PUT',
      path: `/federation/v1/send/${txnId}`,
      body: { events: entries, edus },
      maxBytes: 1024 * 1024,
    });
    return (res.body as { events: Record<string, { error?: string }> }).events;
  }

  /** Any signed request to a peer (the harness as a participant: join, backfill, state…); answers the parsed body. */
  async request(destination: string, method: string, path: string, body?: unknown): Promise<unknown> {
    const res = await this.outbound().request({
      destination,
      method,
      path,
      ...(body === undefined ? {} : { body }),
      maxBytes: 64 * 1024 * 1024,
    });
    return res.body;
  }

  /** Signs an event of `roomId` (hosted anywhere) as this server's user, e.g. a join to send to a real host. */
  signFor(roomId: string, type: string, content: Record<string, unknown>, stateKey?: string): RoomEvent {
    return new HostileRoom(roomId, this).sign(type, content, stateKey === undefined ? {} : { stateKey });
  }

  async close(): Promise<void> {
    this.release();
    await this.client?.close();
    this.http.closeAllConnections();
    await new Promise<void>((resolve) => this.http.close(() => resolve()));
  }

  private outbound(): FederationClient {
    this.client ??= new FederationClient({
      serverName: this.name,
      signingKey: this.key,
      policy: new AddressPolicy({ allow: ['127.0.0.0/8'] }),
      staticServers: Object.fromEntries([...this.peers].map(([n, p]) => [n, p.address])),
      pinsFor: (server) => {
        const fp = this.peers.get(server)?.fingerprint;
        return fp ? [fp] : undefined;
      },
    });
    return this.client;
  }

  /** The honest answer: key document, join (sequences the join, answers the whole chain), backfill, state, send. */
  honest(req: SeenRequest): Reply {
    const url = new URL(req.path, 'https://x');
    if (req.method === 'GET' && url.pathname === '/federation/v1/keys') {
      return json(
        buildKeyDocument({
          serverName: this.name,
          current: this.key,
          tlsFingerprints: [this.tls.fingerprint],
          validForMs: 86_400_000,
          now: Date.now(),
        }),
      );
    }
    if (req.method === 'PUT' && url.pathname.startsWith('/federation/v1/send/')) return json({ events: {}, duplicate: false });
    const m = /^\/federation\/v1\/rooms\/([^/]+)\/(join|events|state|submit)$/.exec(url.pathname);
    const room = m ? this.rooms.get(decodeURIComponent(m[1] as string)) : undefined;
    if (!m || !room) return json({ error: { code: 'PARLEY_NOT_FOUND', message: 'no such thing here' } }, 404);
    if (m[2] === 'join') {
      const event = (req.body as { event?: RoomEvent })?.event;
      if (!event) return json({ error: { code: 'PARLEY_MISSING_PARAM', message: 'event is required' } }, 400);
      room.append(event);
      return json({ entries: room.entries });
    }
    if (m[2] === 'events') {
      const from = Number(url.searchParams.get('from_seq') ?? 1);
      const limit = Number(url.searchParams.get('limit') ?? 100);
      return json({ entries: room.range(from, limit) });
    }
    if (m[2] === 'submit') {
      const events = (req.body as { events?: RoomEvent[]; event?: RoomEvent }).events;
      const appended = (events ?? [(req.body as { event: RoomEvent }).event]).map((e) => room.append(e));
      const results = appended.map((a) => ({ event_id: a.record.event_id, seq: a.record.seq }));
      return json(events ? { results } : results[0]);
    }
    return json({ seq: room.entries.length, entries: room.entries.filter((e) => e.event.state_key !== undefined) });
  }

  /** @internal the request handler */
  async handle(req: SeenRequest): Promise<Reply> {
    this.requests.push(req);
    for (const s of this.scripts) {
      if (s.method !== req.method) continue;
      const match = req.path.match(s.path);
      if (!match) continue;
      const reply = await s.script(req, match);
      if (reply) return reply;
    }
    return this.honest(req);
  }

  /** @internal */
  waitHeld(): Promise<void> {
    return new Promise<void>((resolve) => {
      const wake = () => {
        this.held.delete(wake);
        resolve();
      };
      this.held.add(wake);
    });
  }
}

const CHUNK = Buffer.alloc(64 * 1024, 0x20);

/** Starts a hostile server named `name` on a free loopback port. */
export async function startHostileServer(name = 'evil.test'): Promise<HostileServer> {
  const tls = await generateSelfSignedCertificate(name);
  const key = generateSigningKey();
  let server: HostileServer | null = null;
  const http = createServer({ cert: tls.certPem, key: tls.keyPem }, (req, res) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= 16 * 1024 * 1024) chunks.push(c);
    });
    req.on('end', async () => {
      let body: unknown;
      try {
        body = chunks.length ? JSON.parse(Buffer.concat(chunks).toString('utf8')) : undefined;
      } catch {
        body = undefined;
      }
      const origin = /origin=([^,\s]+)/.exec(req.headers.authorization ?? '')?.[1]?.replace(/"/g, '') ?? null;
      const seen = { method: req.method ?? 'GET', path: req.url ?? '/', origin, body };
      try {
        await send(await (server as HostileServer).handle(seen));
      } catch (err) {
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: { code: 'PARLEY_INTERNAL', message: (err as Error).message } }));
      }
    });
    const write = (buf: Buffer): boolean => {
      (server as HostileServer).bytesSent += buf.length;
      return res.write(buf);
    };
    const send = async (reply: Reply): Promise<void> => {
      switch (reply.kind) {
        case 'json': {
          const buf = Buffer.from(JSON.stringify(reply.body));
          res.writeHead(reply.status, { 'content-type': 'application/json', 'content-length': String(buf.length), ...reply.headers });
          (server as HostileServer).bytesSent += buf.length;
          res.end(buf);
          return;
        }
        case 'slow':
          await new Promise((r) => setTimeout(r, reply.ms));
          return send(reply.then);
        case 'hold':
          await (server as HostileServer).waitHeld();
          if (!res.destroyed) res.writeHead(503, { 'content-type': 'application/json' }).end('{"error":{"code":"PARLEY_UNAVAILABLE"}}');
          return;
        case 'huge':
        case 'endless': {
          // No content-length: the peer learns the size only by reading. '{"entries":[' then spaces.
          res.writeHead(200, { 'content-type': 'application/json' });
          let left = reply.kind === 'huge' ? reply.bytes : Number.POSITIVE_INFINITY;
          write(Buffer.from('{"entries":['));
          while (left > 0 && !res.destroyed) {
            const piece = left >= CHUNK.length ? CHUNK : CHUNK.subarray(0, left);
            left -= piece.length;
            if (!write(piece)) await drainOrClose(res);
          }
          if (!res.destroyed) res.end();
          return;
        }
      }
    };
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', () => resolve()));
  server = new HostileServer(name, key, tls, http);
  return server;
}

/** Waits for `res` to drain or close, leaving no listener behind (one per full buffer adds up). */
function drainOrClose(res: ServerResponse): Promise<void> {
  return new Promise<void>((resolve) => {
    if (res.destroyed) return resolve();
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.once('drain', done).once('close', done);
  });
}

/**
 * A test server `serverName` and a new hostile server `hostileName` that federate with each
 * other: the test server reaches the hostile one through its static server map, the hostile one
 * knows the test server's port and certificate.
 */
export async function startWithHostile(
  hostileName: string,
  serverName: string,
  clock?: Clock,
): Promise<{ hostile: HostileServer; hs: TestServer }> {
  const hostile = await startHostileServer(hostileName);
  try {
    const hs = await startTestServer(
      { server_name: serverName, federation: { static_servers: { [hostile.name]: hostile.address } } },
      clock,
    );
    const f = hs.federation;
    if (!f) throw new Error(`${serverName} does not federate`);
    hostile.addPeer(serverName, f.port, f.context.tls.fingerprint);
    return { hostile, hs };
  } catch (err) {
    await hostile.close();
    throw err;
  }
}
