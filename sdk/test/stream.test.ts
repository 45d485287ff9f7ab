import { StreamCloseCode } from '@parley/schemas';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { WebSocket } from 'ws';
import { ParleyClient, ParleyStream, type ParleyStreamOptions, type StreamEvents, SyncPoller } from '../src/index.js';
import { ScriptedStreamServer } from './support/scripted-stream-server.js';

// The client against a scripted server over real WebSocket and HTTP transport. End-to-end
// tests against the real homeserver live in homeserver/test/.

const EVENT_TYPES = [
  'frame',
  'event',
  'typing',
  'receipt',
  'presence',
  'profile',
  'device_list',
  'to_device',
  'ready',
  'connected',
  'disconnected',
  'reconnecting',
  'revoked',
] as const satisfies readonly (keyof StreamEvents)[];

type Logged = { [K in keyof StreamEvents]: [K, StreamEvents[K]] }[keyof StreamEvents];

let server: ScriptedStreamServer;
let streams: Array<ParleyStream | SyncPoller>;

beforeEach(async () => {
  server = await ScriptedStreamServer.start();
  streams = [];
});

afterEach(async () => {
  for (const s of streams) s.close();
  await server.stop();
  vi.unstubAllGlobals();
});

function newClient(): ParleyClient {
  const session = {
    user_id: '@a:hs.test',
    device_id: 'DEV',
    access_token: 'pat_1',
    refresh_token: 'prt_1',
    expires_at_ms: Date.now() + 3600_000,
  };
  return new ParleyClient({ baseUrl: server.baseUrl, session });
}

/** A started stream with every event it emits logged, and the positions it reported. */
function startStream(options: Partial<ParleyStreamOptions> = {}) {
  const positions: number[] = [];
  const stream = new ParleyStream({
    client: newClient(),
    WebSocket,
    random: () => 0,
    onPosition: (p) => positions.push(p),
    ...options,
  });
  const log = record(stream);
  streams.push(stream.start());
  return { stream, log, positions };
}

function record(emitter: ParleyStream | SyncPoller): Logged[] {
  const log: Logged[] = [];
  for (const type of EVENT_TYPES) emitter.on(type, (payload: unknown) => log.push([type, payload] as Logged));
  return log;
}

function ofType<K extends keyof StreamEvents>(log: Logged[], type: K): StreamEvents[K][] {
  return log.filter((entry) => entry[0] === type).map((entry) => entry[1] as StreamEvents[K]);
}

const framePositions = (log: Logged[]) => ofType(log, 'frame').map((f) => f.position);

async function until(check: () => void, timeout = 5000): Promise<void> {
  await vi.waitFor(check, { timeout, interval: 5 });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('ParleyStream over a real WebSocket', () => {
  it('connects, identifies without since the first time, and delivers frames in order', async () => {
    const { stream, log, positions } = startStream();
    const peer = await server.nextPeer();
    expect(await peer.handshake()).toEqual({ op: 'identify', token: 'pat_1' });
    peer.ready(10, true);
    peer.frame(11, 'typing', { room_id: '!r:hs.test', user_ids: ['@b:hs.test'] });
    peer.frame(12, 'presence', { user_id: '@b:hs.test', presence: 'online', last_active_ts: null });
    await until(() => expect(framePositions(log)).toEqual([11, 12]));

    expect(ofType(log, 'connected')).toEqual([{ transport: 'websocket' }]);
    expect(ofType(log, 'ready')).toEqual([{ position: 10, reset: true, transport: 'websocket' }]);
    expect(ofType(log, 'typing').map((f) => f.data.user_ids)).toEqual([['@b:hs.test']]);
    expect(ofType(log, 'presence').map((f) => f.data.presence)).toEqual(['online']);
    expect(positions).toEqual([10, 11, 12]);
    expect(stream.position).toBe(12);
  });

  it('sends heartbeats at the interval the server asked for', async () => {
    startStream();
    const peer = await server.nextPeer();
    await peer.handshake(60);
    peer.ready(0, true);
    await until(() => expect(peer.heartbeats).toBeGreaterThanOrEqual(3));
    expect(server.untakenPeers).toBe(0); // acked heartbeats keep the socket alive
  });

  it('resumes with since after the socket drops mid-stream, skipping the overlapping replay', async () => {
    const { log, positions } = startStream({ since: 4 });
    const first = await server.nextPeer();
    expect(await first.handshake()).toEqual({ op: 'identify', token: 'pat_1', since: 4 });
    first.frame(5);
    first.frame(6);
    first.ready(6);
    first.frame(7);
    await until(() => expect(framePositions(log)).toEqual([5, 6, 7]));
    first.ws.terminate();

    const second = await server.nextPeer();
    expect(await second.handshake()).toEqual({ op: 'identify', token: 'pat_1', since: 7 });
    // The server replays a little more than it must; the client emits none of it twice.
    for (const p of [6, 7, 8, 9]) second.frame(p);
    second.ready(9);
    second.frame(10);
    await until(() => expect(framePositions(log)).toEqual([5, 6, 7, 8, 9, 10]));

    expect(ofType(log, 'disconnected')).toEqual([{ code: 1006, reason: '', willRetry: true }]);
    expect(ofType(log, 'reconnecting')).toEqual([{ attempt: 1, delayMs: 0 }]);
    expect(ofType(log, 'ready').map((r) => r.position)).toEqual([6, 9]);
    expect(positions).toEqual([5, 6, 7, 8, 9, 10]);
  });

  it('reconnects after RESUME with full-jitter backoff that resets after ready', async () => {
    const { log } = startStream({ random: () => 0.5, backoff: { initialMs: 40, maxMs: 1000 } });
    const a = await server.nextPeer();
    await a.handshake();
    a.ready(3, true);
    await until(() => expect(ofType(log, 'ready')).toHaveLength(1));
    a.ws.close(StreamCloseCode.RESUME, 'too slow');

    const b = await server.nextPeer();
    expect(await b.handshake()).toMatchObject({ since: 3 });
    b.ws.close(StreamCloseCode.RESUME, 'too slow'); // again, before ready: the delay grows

    const c = await server.nextPeer();
    expect(await c.handshake()).toMatchObject({ since: 3 });
    c.ready(3);
    await until(() => expect(ofType(log, 'ready')).toHaveLength(2));
    c.ws.close(StreamCloseCode.GOING_AWAY, 'shutting down');
    await server.nextPeer();

    expect(ofType(log, 'disconnected').map((d) => [d.code, d.reason, d.willRetry])).toEqual([
      [4008, 'too slow', true],
      [4008, 'too slow', true],
      [1001, 'shutting down', true],
    ]);
    // random 0.5 of min(1000, 40·2^attempt); the count starts again after ready.
    expect(ofType(log, 'reconnecting')).toEqual([
      { attempt: 1, delayMs: 20 },
      { attempt: 2, delayMs: 40 },
      { attempt: 1, delayMs: 20 },
    ]);
  });

  it('stops and emits revoked on REVOKED', async () => {
    const { log } = startStream();
    const peer = await server.nextPeer();
    await peer.handshake();
    peer.ready(1, true);
    peer.ws.close(StreamCloseCode.REVOKED, 'device deleted');
    await until(() => expect(ofType(log, 'revoked')).toEqual([{ reason: 'device deleted' }]));
    expect(ofType(log, 'disconnected')).toEqual([{ code: 4003, reason: 'device deleted', willRetry: false }]);
    await sleep(100);
    expect(server.untakenPeers).toBe(0);
    expect(ofType(log, 'reconnecting')).toEqual([]);
  });

  it('refreshes the token exactly once on AUTH_FAILED, then gives up with revoked', async () => {
    let refreshes = 0;
    server.routes.set('POST /api/v1/auth/refresh', (_req, body) => {
      refreshes += 1;
      expect(JSON.parse(body)).toEqual({ refresh_token: 'prt_1' });
      return { status: 200, body: { access_token: 'pat_2', refresh_token: 'prt_2', expires_in_ms: 3600_000 } };
    });
    const { log } = startStream();
    const a = await server.nextPeer();
    expect(await a.handshake()).toMatchObject({ token: 'pat_1' });
    a.ws.close(StreamCloseCode.AUTH_FAILED, 'unknown token');

    const b = await server.nextPeer();
    expect(await b.handshake()).toMatchObject({ token: 'pat_2' });
    b.ws.close(StreamCloseCode.AUTH_FAILED, 'unknown token');

    await until(() => expect(ofType(log, 'revoked')).toHaveLength(1));
    expect(refreshes).toBe(1);
    await sleep(100);
    expect(server.untakenPeers).toBe(0);
  });

  it('comes back at once, with no second refresh, when its own refresh replaced the token (4002)', async () => {
    let refreshes = 0;
    server.routes.set('POST /api/v1/auth/refresh', () => {
      refreshes += 1;
      return { status: 200, body: { access_token: 'pat_2', refresh_token: 'prt_2', expires_in_ms: 3600_000 } };
    });
    const client = newClient();
    const { log } = startStream({ client });
    const a = await server.nextPeer();
    expect(await a.handshake()).toMatchObject({ token: 'pat_1' });
    a.ready(1, true);
    await until(() => expect(ofType(log, 'ready')).toHaveLength(1));
    await client.refresh();
    // The server ends the socket that identified with the replaced token.
    a.ws.close(StreamCloseCode.AUTH_FAILED, 'PARLEY_TOKEN_REPLACED');
    const b = await server.nextPeer();
    expect(await b.handshake()).toMatchObject({ token: 'pat_2', since: 1 });
    b.ready(1, false);
    await until(() => expect(ofType(log, 'ready')).toHaveLength(2));
    expect(refreshes).toBe(1);
    expect(ofType(log, 'reconnecting')).toEqual([]);
    expect(ofType(log, 'revoked')).toEqual([]);
  });

  it('emits revoked when the refresh after AUTH_FAILED is refused', async () => {
    server.routes.set('POST /api/v1/auth/refresh', () => ({
      status: 401,
      body: { error: { code: 'PARLEY_UNKNOWN_TOKEN', message: 'refresh token reused' } },
    }));
    const { log } = startStream();
    const a = await server.nextPeer();
    await a.handshake();
    a.ws.close(StreamCloseCode.AUTH_FAILED, 'unknown token');
    await until(() => expect(ofType(log, 'revoked')).toEqual([{ reason: 'refresh token reused' }]));
    expect(server.untakenPeers).toBe(0);
  });

  it('treats a server that stops answering heartbeats as dead and reconnects', async () => {
    const { log } = startStream();
    const a = await server.nextPeer();
    a.ackHeartbeats = false;
    await a.handshake(40);
    a.ready(2, true);
    // No ack and no other message: after 2 × 40 ms the client gives up on this socket.
    const b = await server.nextPeer(2000);
    expect(await b.handshake()).toMatchObject({ since: 2 });
    expect(a.heartbeats).toBeGreaterThanOrEqual(1);
    expect(ofType(log, 'disconnected')).toEqual([{ code: 1006, reason: 'heartbeat timeout', willRetry: true }]);
  });

  it('close() stops for good, also while waiting to reconnect', async () => {
    const { stream, log } = startStream();
    const a = await server.nextPeer();
    await a.handshake();
    a.ready(1, true);
    await until(() => expect(ofType(log, 'ready')).toHaveLength(1));
    stream.close();
    expect((await a.closed).code).toBe(1000);
    expect(ofType(log, 'disconnected')).toEqual([{ code: 1000, reason: 'closed by client', willRetry: false }]);

    const waiting = startStream({ random: () => 0.99, backoff: { initialMs: 200, maxMs: 200 } });
    const b = await server.nextPeer();
    await b.handshake();
    waiting.stream.on('reconnecting', () => waiting.stream.close());
    b.ws.close(StreamCloseCode.RESUME, 'too slow');
    await until(() => expect(ofType(waiting.log, 'disconnected').at(-1)?.willRetry).toBe(false));
    await sleep(300);
    expect(server.untakenPeers).toBe(0);
    expect(() => stream.start()).toThrow('a closed ParleyStream cannot be restarted');
  });

  it('survives invalid JSON from the server: closes with INVALID_JSON and reconnects', async () => {
    const { log } = startStream();
    const a = await server.nextPeer();
    await a.handshake();
    a.ready(5, true);
    a.send('{"op": "frame", oops');
    expect((await a.closed).code).toBe(StreamCloseCode.INVALID_JSON);

    const b = await server.nextPeer();
    expect(await b.handshake()).toMatchObject({ since: 5 });
    b.ready(5);
    b.frame(6);
    await until(() => expect(framePositions(log)).toEqual([6]));
    expect(ofType(log, 'disconnected')[0]).toMatchObject({ code: StreamCloseCode.INVALID_JSON, willRetry: true });
  });

  it('closes with INVALID_MESSAGE on a malformed frame and keeps its position', async () => {
    const { log } = startStream({ since: 8 });
    const a = await server.nextPeer();
    await a.handshake();
    a.send({ op: 'frame', frame: { position: -1, kind: 'typing', data: {} } });
    expect((await a.closed).code).toBe(StreamCloseCode.INVALID_MESSAGE);
    const b = await server.nextPeer();
    expect(await b.handshake()).toMatchObject({ since: 8 });
    expect(framePositions(log)).toEqual([]);
  });

  it('drops since after INVALID_POSITION and accepts the reset', async () => {
    const { log, stream } = startStream({ since: 900 });
    const a = await server.nextPeer();
    expect(await a.handshake()).toMatchObject({ since: 900 });
    a.ws.close(StreamCloseCode.INVALID_POSITION, 'since is ahead');
    const b = await server.nextPeer();
    expect(await b.handshake()).toEqual({ op: 'identify', token: 'pat_1' });
    b.ready(40, true);
    await until(() => expect(ofType(log, 'ready')).toEqual([{ position: 40, reset: true, transport: 'websocket' }]));
    expect(stream.position).toBe(40);
  });

  it('ignores ops it does not know (a newer server)', async () => {
    const { log } = startStream();
    const a = await server.nextPeer();
    await a.handshake();
    a.send({ op: 'something_new', x: 1 });
    a.ready(1, true);
    await until(() => expect(ofType(log, 'ready')).toHaveLength(1));
    expect(ofType(log, 'disconnected')).toEqual([]);
  });
});

describe('long-poll', () => {
  /** Serves /api/v1/sync from a list of answers, recording the query of each request. */
  function serveSync(answers: Array<{ frames: number[]; next: number; reset?: boolean }>) {
    const queries: Array<Record<string, string>> = [];
    server.routes.set('GET /api/v1/sync', async (req) => {
      queries.push(Object.fromEntries(new URL(req.url ?? '/', 'http://x').searchParams));
      const answer = answers.shift();
      if (answer === undefined) {
        await sleep(50); // hold the poll like a quiet server would
        return { status: 200, body: { frames: [], next: Number(queries.at(-1)?.since ?? 0), reset: false } };
      }
      const frames = answer.frames.map((position) => ({ position, kind: 'device_list', data: { user_id: '@b:hs.test' } }));
      return { status: 200, body: { frames, next: answer.next, reset: answer.reset ?? false } };
    });
    return queries;
  }

  it('SyncPoller delivers frames de-duplicated and passes since and timeout', async () => {
    const queries = serveSync([
      { frames: [], next: 20, reset: true },
      { frames: [21, 22], next: 22 },
      { frames: [22, 23], next: 23 },
    ]);
    const poller = new SyncPoller({ client: newClient(), timeoutMs: 1000 });
    const log = record(poller);
    streams.push(poller.start());
    await until(() => expect(queries.length).toBeGreaterThanOrEqual(4));
    expect(framePositions(log)).toEqual([21, 22, 23]);
    expect(queries.slice(0, 4)).toEqual([
      { timeout: '1000' },
      { since: '20', timeout: '1000' },
      { since: '22', timeout: '1000' },
      { since: '23', timeout: '1000' },
    ]);
    expect(ofType(log, 'ready')).toEqual([{ position: 20, reset: true, transport: 'longpoll' }]);
    expect(ofType(log, 'device_list')).toHaveLength(3);
  });

  it('SyncPoller backs off on server errors and stops with revoked on 401', async () => {
    let calls = 0;
    server.routes.set('GET /api/v1/sync', () => {
      calls += 1;
      if (calls === 1) return { status: 503, body: { error: { code: 'PARLEY_UNAVAILABLE', message: 'db down' } } };
      return { status: 401, body: { error: { code: 'PARLEY_REVOKED', message: 'device deleted' } } };
    });
    const poller = new SyncPoller({ client: newClient(), random: () => 0.5, backoff: { initialMs: 20, maxMs: 100 } });
    const log = record(poller);
    streams.push(poller.start());
    await until(() => expect(ofType(log, 'revoked')).toEqual([{ reason: 'device deleted' }]));
    expect(ofType(log, 'disconnected')).toEqual([
      { code: 503, reason: 'db down', willRetry: true },
      { code: 401, reason: 'device deleted', willRetry: false },
    ]);
    expect(ofType(log, 'reconnecting')).toEqual([{ attempt: 1, delayMs: 10 }]);
  });

  it("'auto' falls back to long-poll after 3 failed sockets, then returns to the socket", async () => {
    server.rejectUpgrades = true;
    serveSync([
      { frames: [], next: 30, reset: true },
      { frames: [31], next: 31 },
    ]);
    const { log, stream } = startStream({ longPoll: 'auto', socketRetryMs: 100 });
    await until(() => expect(framePositions(log)).toEqual([31]));
    expect(ofType(log, 'disconnected').filter((d) => d.code === 1006)).toHaveLength(3);
    expect(ofType(log, 'ready')[0]).toEqual({ position: 30, reset: true, transport: 'longpoll' });

    server.rejectUpgrades = false;
    const peer = await server.nextPeer();
    expect(await peer.handshake()).toMatchObject({ since: 31 });
    peer.frame(31);
    peer.frame(32);
    peer.ready(32);
    await until(() => expect(ofType(log, 'ready').at(-1)?.transport).toBe('websocket'));
    expect(framePositions(log)).toEqual([31, 32]);
    expect(stream.position).toBe(32);

    // The poller stopped: no sync request starts after the socket took over.
    const before = server.requests.length;
    await sleep(150);
    expect(server.requests.length).toBeLessThanOrEqual(before + 1);
  });

  it("'auto' long-polls straight away where there is no WebSocket", async () => {
    vi.stubGlobal('WebSocket', undefined);
    serveSync([{ frames: [1], next: 1, reset: true }]);
    const { log } = startStream({ WebSocket: undefined, longPoll: 'auto' });
    await until(() => expect(framePositions(log)).toEqual([1]));
    expect(ofType(log, 'connected')).toEqual([{ transport: 'longpoll' }]);
    expect(server.peers).toHaveLength(0);
  });
});

describe('ParleyStream options', () => {
  it('needs a WebSocket unless long-poll is allowed', () => {
    vi.stubGlobal('WebSocket', undefined);
    expect(() => new ParleyStream({ client: newClient() })).toThrow(/no global WebSocket/);
  });

  it.each([
    ['options', null, 'options must be an object'],
    ['client', { client: {} }, 'options.client must be a ParleyClient'],
    ['since', { since: -1 }, 'options.since must be a non-negative integer'],
    ['since', { since: 1.5 }, 'options.since must be a non-negative integer'],
    ['backoff', { backoff: { initialMs: 0, maxMs: 10 } }, 'options.backoff.initialMs must be a positive number'],
    ['longPoll', { longPoll: 'sometimes' }, "options.longPoll must be true, false or 'auto'"],
    ['heartbeatMs', { heartbeatMs: 0 }, 'options.heartbeatMs must be a positive number'],
    ['onPosition', { onPosition: 'save' }, 'options.onPosition must be a function'],
    ['WebSocket', { WebSocket: 'ws' }, 'options.WebSocket must be a function'],
    ['pollTimeoutMs', { pollTimeoutMs: -5 }, 'options.pollTimeoutMs must be a non-negative integer'],
  ])('rejects a bad %s', (_name, extra, message) => {
    const options = extra === null ? null : { client: newClient(), WebSocket, ...extra };
    expect(() => new ParleyStream(options as never)).toThrow(message);
  });
});
