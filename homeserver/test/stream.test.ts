import { StreamCloseCode } from '@parley/schemas';
import { type ParleyClient, RoomsApi } from '@parley/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startTestServer, type TestServer } from './support/server.js';
import { bodyOf, openStream } from './support/stream-client.js';

interface Person {
  client: ParleyClient;
  rooms: RoomsApi;
  id: string;
  token: () => string;
}

describe('the live stream', () => {
  let server: TestServer;
  let alice: Person;
  let bob: Person;
  let roomId: string;

  async function person(name: string): Promise<Person> {
    const client = server.client();
    await client.register({ username: name, password: `${name} password` });
    return { client, rooms: new RoomsApi(client), id: `@${name}:hs1.test`, token: () => client.session?.access_token as string };
  }

  beforeAll(async () => {
    server = await startTestServer({ stream: { max_buffered_bytes: 64 * 1024 } });
    alice = await person('alice');
    bob = await person('bob');
    ({ room_id: roomId } = await alice.rooms.create({ visibility: 'public', name: 'Live' }));
    await bob.rooms.join(roomId);
  });
  afterAll(() => server?.close());

  /** Long-polls the server holds right now (each listens for revocations while it waits). */
  function pollsWaiting(): number {
    return (server.services.bus as unknown as { emitter: { listenerCount(e: string): number } }).emitter.listenerCount('control');
  }

  it('pushes room events with unread counts and the sender device’s txn_id', async () => {
    const bobStream = openStream(server.url, bob.token());
    const aliceStream = openStream(server.url, alice.token());
    expect((await bobStream.ready).reset).toBe(true);
    await aliceStream.ready;
    await alice.rooms.sendText(roomId, 'live one', 'txn-live-1');
    const atBob = await bobStream.waitFor((f) => bodyOf(f) === 'live one');
    const atAlice = await aliceStream.waitFor((f) => bodyOf(f) === 'live one');
    expect(atBob.kind === 'event' && atBob.data.unread_count).toBe(1);
    expect(atAlice.kind === 'event' && atAlice.data.event.unsigned?.txn_id).toBe('txn-live-1');
    expect(atBob.kind === 'event' && atBob.data.event.unsigned?.txn_id).toBeUndefined();
    expect(atBob.position).toBe(atAlice.position);
    bobStream.close();
    aliceStream.close();
  });

  it('resumes exactly after disconnects at random points under concurrent sends', async () => {
    const TOTAL = 300;
    const received: string[] = [];
    let since: number | undefined;
    const first = openStream(server.url, bob.token());
    since = (await first.ready).position;
    first.close();
    await first.closed;
    let sent = 0;
    const sender = (async () => {
      while (sent < TOTAL) {
        const batch = Array.from({ length: Math.min(5, TOTAL - sent) }, () => alice.rooms.sendText(roomId, `resume ${sent++}`));
        await Promise.all(batch);
      }
    })();
    let reconnects = 0;
    while (true) {
      const s = openStream(server.url, bob.token(), since);
      await s.ready;
      // Stay connected for a random while, then drop the connection abruptly.
      await new Promise((r) => setTimeout(r, 20 + Math.random() * 120));
      const senderDone = sent >= TOTAL;
      if (senderDone) await new Promise((r) => setTimeout(r, 300));
      s.ws.terminate();
      await s.closed;
      for (const f of s.frames) {
        expect(f.position).toBeGreaterThan(since as number);
        since = f.position;
        const body = bodyOf(f);
        if (body?.startsWith('resume ')) received.push(body);
      }
      reconnects++;
      if (senderDone && received.length >= TOTAL) break;
      if (reconnects > 150) break;
    }
    if (received.length !== TOTAL) {
      const got = new Set(received);
      const missing = Array.from({ length: TOTAL }, (_, i) => `resume ${i}`).filter((b) => !got.has(b));
      throw new Error(`missing ${missing.length}: ${missing.slice(0, 10).join(', ')}; dupes ${received.length - got.size}`);
    }
    await sender;
    expect(reconnects).toBeGreaterThan(2);
    expect(received).toHaveLength(TOTAL);
    expect(new Set(received).size).toBe(TOTAL);
  }, 120_000);

  it('closes the socket with REVOKED when the device logs out', async () => {
    const c = server.client();
    await c.login({ username: 'bob', password: 'bob password' });
    const s = openStream(server.url, c.session?.access_token as string);
    await s.ready;
    await c.logout();
    expect((await s.closed).code).toBe(StreamCloseCode.REVOKED);
  });

  it('tells a reader that reads nothing to resume instead of buffering without bound', async () => {
    type ServerSide = { state: string };
    const sockets = () => [...(server.gateway as unknown as { all: Set<ServerSide> }).all];
    const before = new Set(sockets());
    const s = openStream(server.url, bob.token());
    await s.ready;
    const serverSide = sockets().find((c) => !before.has(c)) as ServerSide;
    // Stop reading from the TCP socket: the kernel buffers fill, then the server's.
    (s.ws as unknown as { _socket: { pause(): void; resume(): void } })._socket.pause();
    const big = 'x'.repeat(30_000);
    // Up to 12 MB: more than loopback's kernel buffers hold, so the server's own buffer grows
    // until it gives up on the socket. Read again as soon as it has (the close frame waits in
    // the buffers, behind what was queued).
    for (let i = 0; i < 400 && serverSide.state !== 'closed'; i++) await alice.rooms.sendText(roomId, `${big} ${i}`);
    expect(serverSide.state).toBe('closed');
    (s.ws as unknown as { _socket: { resume(): void } })._socket.resume();
    expect((await s.closed).code).toBe(StreamCloseCode.RESUME);
  }, 120_000);

  it('typing notices appear and time out', async () => {
    const s = openStream(server.url, alice.token());
    await s.ready;
    await bob.client.request('PUT', `/api/v1/rooms/${encodeURIComponent(roomId)}/typing`, { typing: true, timeout_ms: 3000 });
    await s.waitFor((f) => f.kind === 'typing' && f.data.user_ids.includes(bob.id));
    // Still typing after the notice was handled; the stop comes later, by itself.
    const { event_id } = await alice.rooms.sendText(roomId, 'while bob types');
    const marker = await s.waitFor((f) => f.kind === 'event' && f.data.event.event_id === event_id);
    const stop = await s.waitFor((f) => f.kind === 'typing' && f.data.user_ids.length === 0, 10_000);
    expect(stop.position).toBeGreaterThan(marker.position);
    s.close();
  });

  it('presence: online with a stream, idle on request, offline when it closes', async () => {
    const watcher = openStream(server.url, alice.token());
    await watcher.ready;
    const c = server.client();
    await c.login({ username: 'bob', password: 'bob password' });
    // Bob's other streams from earlier tests are closed by now; this one makes him online.
    const s = openStream(server.url, c.session?.access_token as string);
    await s.ready;
    await watcher.waitFor((f) => f.kind === 'presence' && f.data.user_id === bob.id && f.data.presence === 'online');
    await c.request('PUT', '/api/v1/presence', { presence: 'idle' });
    await watcher.waitFor((f) => f.kind === 'presence' && f.data.user_id === bob.id && f.data.presence === 'idle');
    s.close();
    await watcher.waitFor((f) => f.kind === 'presence' && f.data.user_id === bob.id && f.data.presence === 'offline');
    expect(await c.request('GET', `/api/v1/presence/${encodeURIComponent(bob.id)}`)).toMatchObject({ presence: 'offline' });
    watcher.close();
  });

  it('receipts: public ones reach the room, private ones only their owner', async () => {
    const a = openStream(server.url, alice.token());
    const b = openStream(server.url, bob.token());
    await Promise.all([a.ready, b.ready]);
    const first = await alice.rooms.sendText(roomId, 'read me');
    await bob.rooms.markRead(roomId, first.event_id);
    await a.waitFor((f) => f.kind === 'receipt' && f.data.event_id === first.event_id && f.data.user_id === bob.id);
    const second = await alice.rooms.sendText(roomId, 'read me quietly');
    await bob.client.request('POST', `/api/v1/rooms/${encodeURIComponent(roomId)}/receipt`, { event_id: second.event_id, private: true });
    await b.waitFor((f) => f.kind === 'receipt' && f.data.event_id === second.event_id);
    await alice.rooms.sendText(roomId, 'marker');
    await a.waitFor((f) => bodyOf(f) === 'marker');
    expect(a.frames.some((f) => f.kind === 'receipt' && f.data.event_id === second.event_id)).toBe(false);
    a.close();
    b.close();
  });

  it('to-device messages reach only the addressed device', async () => {
    const phone = server.client();
    await phone.login({ username: 'bob', password: 'bob password', device_name: 'phone' });
    const onPhone = openStream(server.url, phone.session?.access_token as string);
    const onOther = openStream(server.url, bob.token());
    await Promise.all([onPhone.ready, onOther.ready]);
    await alice.client.request('PUT', '/api/v1/send_to_device/e2e.test/td1', {
      messages: { [bob.id]: { [phone.session?.device_id as string]: { secret: 'for the phone' } } },
    });
    const frame = await onPhone.waitFor((f) => f.kind === 'to_device');
    expect(frame.kind === 'to_device' && frame.data).toMatchObject({
      sender: alice.id,
      type: 'e2e.test',
      content: { secret: 'for the phone' },
    });
    await alice.rooms.sendText(roomId, 'after to-device');
    await onOther.waitFor((f) => bodyOf(f) === 'after to-device');
    expect(onOther.frames.some((f) => f.kind === 'to_device')).toBe(false);
    onPhone.close();
    onOther.close();
  });

  it('profile changes and new devices reach everyone sharing a room', async () => {
    const a = openStream(server.url, alice.token());
    await a.ready;
    await bob.client.updateProfile(bob.id, { displayname: 'Bobby' });
    const profile = await a.waitFor((f) => f.kind === 'profile' && f.data.user_id === bob.id);
    expect(profile.kind === 'profile' && profile.data.displayname).toBe('Bobby');
    const tablet = server.client();
    await tablet.login({ username: 'bob', password: 'bob password', device_name: 'tablet' });
    await a.waitFor((f) => f.kind === 'device_list' && f.data.user_id === bob.id && f.position > profile.position);
    a.close();
  });

  it('long-poll sync answers with the same frames and waits for new ones', async () => {
    type Sync = { frames: Array<{ position: number; kind: string; data: { event?: { content: { body?: string } } } }>; next: number };
    const start = (await bob.client.request<{ next: number; reset: boolean }>('GET', '/api/v1/sync')).next;
    const listening = pollsWaiting();
    const pending = bob.client.request<Sync>('GET', `/api/v1/sync?since=${start}&timeout=10000`);
    // Send once the server holds the poll (or it has answered with something else already).
    let answered = false;
    void pending.then(() => {
      answered = true;
    });
    for (let i = 0; i < 500 && pollsWaiting() === listening && !answered; i++) await new Promise((r) => setTimeout(r, 10));
    await alice.rooms.sendText(roomId, 'polled');
    // The first answer may carry other frames (presence from earlier streams); poll on.
    let res = await pending;
    const bodies = res.frames.map((f) => f.data.event?.content.body);
    for (let i = 0; i < 5 && !bodies.includes('polled'); i++) {
      res = await bob.client.request<Sync>('GET', `/api/v1/sync?since=${res.next}&timeout=5000`);
      bodies.push(...res.frames.map((f) => f.data.event?.content.body));
    }
    expect(bodies).toContain('polled');
    expect(res.next).toBeGreaterThan(start);
    // Nothing new for bob: a poll waits, and the next event ends the wait with just that event.
    for (let attempt = 0; ; attempt++) {
      if (attempt === 20) throw new Error('every poll was answered at once');
      const before = pollsWaiting();
      const waiting = bob.client.request<Sync>('GET', `/api/v1/sync?since=${res.next}&timeout=20000`);
      let done: Sync | null = null;
      void waiting.then((r) => {
        done = r;
      });
      for (let i = 0; i < 500 && pollsWaiting() === before && done === null; i++) await new Promise((r) => setTimeout(r, 10));
      if (done !== null) {
        // Something else (presence) came first: poll on from there.
        res = done;
        continue;
      }
      expect(pollsWaiting()).toBe(before + 1);
      await alice.rooms.sendText(roomId, 'wakes the poll');
      const woken = await waiting;
      expect(woken.frames.map((f) => f.data.event?.content.body)).toContain('wakes the poll');
      break;
    }
    await expect(bob.client.request('GET', '/api/v1/sync?since=99999999')).rejects.toMatchObject({ status: 400 });
  });

  describe('hostile frames close with a clear code and never hurt the server', () => {
    const cases: Array<[string, (s: ReturnType<typeof openStream>) => void, number]> = [
      ['invalid JSON', (s) => s.send('{not json'), StreamCloseCode.INVALID_JSON],
      ['unknown op', (s) => s.send({ op: 'dance' }), StreamCloseCode.UNKNOWN_OP],
      ['heartbeat before identify', (s) => s.send({ op: 'heartbeat' }), StreamCloseCode.NOT_IDENTIFIED],
      ['identify with a bad token', (s) => s.send({ op: 'identify', token: 'pat_nope' }), StreamCloseCode.AUTH_FAILED],
      ['identify with extra fields', (s) => s.send({ op: 'identify', token: 'x', admin: true }), StreamCloseCode.INVALID_MESSAGE],
      ['identify with a negative position', (s) => s.send({ op: 'identify', token: 'x', since: -1 }), StreamCloseCode.INVALID_MESSAGE],
      ['oversized message', (s) => s.send({ op: 'identify', token: 'x'.repeat(20_000) }), StreamCloseCode.TOO_LARGE],
      ['binary message', (s) => s.ws.send(Buffer.from([1, 2, 3])), StreamCloseCode.INVALID_MESSAGE],
      ['JSON null', (s) => s.send('null'), StreamCloseCode.UNKNOWN_OP],
    ];
    for (const [name, act, code] of cases) {
      it(name, async () => {
        const s = openStream(server.url, null);
        await new Promise<void>((resolve) => s.ws.once('message', () => resolve()));
        act(s);
        expect((await s.closed).code).toBe(code);
      });
    }

    it('identify twice, and a position from the future', async () => {
      const twice = openStream(server.url, bob.token());
      await twice.ready;
      twice.send({ op: 'identify', token: bob.token() });
      expect((await twice.closed).code).toBe(StreamCloseCode.ALREADY_IDENTIFIED);
      const future = openStream(server.url, bob.token(), 10 ** 12);
      expect((await future.closed).code).toBe(StreamCloseCode.INVALID_POSITION);
    });

    it('silence before identify hits the identify timeout; other upgrade paths are refused', async () => {
      const quick = await startTestServer({ stream: { identify_timeout_ms: 1000 } });
      try {
        const s = openStream(quick.url, null);
        expect((await s.closed).code).toBe(StreamCloseCode.IDENTIFY_TIMEOUT);
        const other = new WebSocket(`${quick.url.replace('http', 'ws')}/api/v1/elsewhere`);
        const outcome = await new Promise<string>((resolve) => {
          other.on('unexpected-response', (_req, res) => resolve(String(res.statusCode)));
          other.on('error', (err) => resolve(err.message));
        });
        expect(outcome).toMatch(/404/);
      } finally {
        await quick.close();
      }
    });

    it('the server is still healthy and streaming', async () => {
      expect((await fetch(`${server.url}/health`)).status).toBe(200);
      const s = openStream(server.url, bob.token());
      await s.ready;
      await alice.rooms.sendText(roomId, 'still here');
      await s.waitFor((f) => bodyOf(f) === 'still here');
      s.close();
    });
  });
});
