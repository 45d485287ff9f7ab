import { StreamCloseCode, type SyncResponse } from '@parley/schemas';
import { type ParleyClient, ParleyStream, RoomsApi } from '@parley/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { ManualClock, startTestServer, type TestServer } from './support/server.js';
import { openStream } from './support/stream-client.js';

/** Streams end with the access token they opened with, and old positions resync. */
describe('stream sessions', () => {
  let server: TestServer;
  const clock = new ManualClock();
  let n = 0;

  async function signUp(): Promise<{ client: ParleyClient; id: string; password: string }> {
    const username = `user${++n}`;
    const password = `${username} password`;
    const client = server.client();
    await client.register({ username, password });
    return { client, id: `@${username}:hs1.test`, password };
  }

  async function signIn(username: string, password: string): Promise<ParleyClient> {
    const client = server.client();
    await client.login({ username, password });
    return client;
  }

  async function edge(client: ParleyClient): Promise<number> {
    return (await client.request<SyncResponse>('GET', '/api/v1/sync')).next;
  }

  /** Listeners for revocations on the bus: one more while a long-poll waits. */
  function controlListeners(): number {
    return (server.services.bus as unknown as { emitter: { listenerCount(e: string): number } }).emitter.listenerCount('control');
  }

  /**
   * A long-poll with a fixed token (no sdk refresh) that the server holds: polls again while
   * answers carry frames, until one waits (nothing new for it).
   */
  async function heldPoll(client: ParleyClient): Promise<{ poll: Promise<Response> }> {
    const token = client.session?.access_token as string;
    let since = await edge(client);
    for (let attempt = 0; attempt < 20; attempt++) {
      const before = controlListeners();
      const poll = fetch(`${server.url}/api/v1/sync?since=${since}&timeout=25000`, { headers: { authorization: `Bearer ${token}` } });
      let answered: Response | null = null;
      void poll.then((r) => {
        answered = r;
      });
      for (let i = 0; i < 500 && controlListeners() === before && answered === null; i++) await new Promise((r) => setTimeout(r, 10));
      if (answered === null) return { poll };
      since = ((await (answered as Response).json()) as SyncResponse).next;
    }
    throw new Error('every poll was answered at once');
  }

  /**
   * Notes about the user that follow sign-up, sign-in and the socket (own presence online, a
   * device-list note per device) land asynchronously: wait for them, so none wakes a poll later.
   */
  async function settled(s: ReturnType<typeof openStream>, userId: string): Promise<void> {
    await s.waitFor((f) => f.kind === 'presence' && f.data.user_id === userId);
    const db = server.services.db;
    for (let i = 0; i < 500; i++) {
      const [devices] = await db('devices').where({ user_id: userId }).count<{ n: number }[]>('* as n');
      const [notes] = await db('stream').where({ user_id: userId, kind: 'device_list' }).count<{ n: number }[]>('* as n');
      if (Number(notes?.n) >= Number(devices?.n)) return;
      await new Promise((r) => setTimeout(r, 10));
    }
    throw new Error(`device-list notes of ${userId} never landed`);
  }

  beforeAll(async () => {
    // Short heartbeats: the token audit runs with the heartbeat check (every second here).
    server = await startTestServer({ stream: { retention_ms: 3600_000, heartbeat_ms: 2000 } }, clock);
  });
  afterAll(() => server?.close());

  it('security: M2 a refresh ends the streams opened with the token it replaces (WebSocket and long-poll)', async () => {
    const { client } = await signUp();
    const stolen = client.session?.access_token as string;
    const ws = openStream(server.url, stolen);
    await ws.ready;
    await settled(ws, client.session?.user_id as string);
    const { poll } = await heldPoll(client);
    await client.refresh();
    expect((await ws.closed).code).toBe(StreamCloseCode.AUTH_FAILED);
    expect((await poll).status).toBe(401);
    // The new token streams as usual.
    const fresh = openStream(server.url, client.session?.access_token as string);
    await fresh.ready;
    fresh.close();
  });

  it('the sdk stream comes back by itself after its own refresh replaced the token', async () => {
    const { client } = await signUp();
    const stream = new ParleyStream({ client, WebSocket: WebSocket as never, backoff: { initialMs: 20, maxMs: 200 } });
    const readies: boolean[] = [];
    let resolveSecond: () => void = () => {};
    const second = new Promise<void>((r) => {
      resolveSecond = r;
    });
    stream.on('ready', (r) => {
      readies.push(r.reset);
      if (readies.length === 2) resolveSecond();
    });
    let revoked = false;
    stream.on('revoked', () => {
      revoked = true;
    });
    stream.start();
    await new Promise<void>((r) => stream.once('ready', () => r()));
    await client.refresh();
    await second;
    expect(revoked).toBe(false);
    expect(readies).toEqual([true, false]);
    stream.close();
  });

  it('the sdk long-poll carries on after its own refresh ends the poll it had waiting', async () => {
    const { client } = await signUp();
    const stream = new ParleyStream({ client, longPoll: true, backoff: { initialMs: 20, maxMs: 200 } });
    let revoked = false;
    stream.on('revoked', () => {
      revoked = true;
    });
    const bodies: string[] = [];
    stream.on('event', (f) => {
      if (typeof f.data.event.content.body === 'string') bodies.push(f.data.event.content.body);
    });
    const base = controlListeners();
    const ready = new Promise<void>((r) => stream.once('ready', () => r()));
    stream.start();
    await ready;
    // Refresh while the server holds the poll.
    for (let i = 0; i < 500 && controlListeners() === base; i++) await new Promise((r) => setTimeout(r, 10));
    expect(controlListeners()).toBe(base + 1);
    await client.refresh();
    const rooms = new RoomsApi(client);
    const { room_id } = await rooms.create({ visibility: 'private', name: 'After refresh' });
    await rooms.sendText(room_id, 'still polling');
    for (let i = 0; i < 500 && !bodies.includes('still polling'); i++) await new Promise((r) => setTimeout(r, 10));
    expect(bodies).toContain('still polling');
    expect(revoked).toBe(false);
    stream.close();
  });

  it('refresh-token reuse signs the device out and ends its streams', async () => {
    const { client } = await signUp();
    const oldRefresh = client.session?.refresh_token as string;
    await client.refresh();
    const token = client.session?.access_token as string;
    const ws = openStream(server.url, token);
    await ws.ready;
    await settled(ws, client.session?.user_id as string);
    const { poll } = await heldPoll(client);
    const replay = await fetch(`${server.url}/api/v1/auth/refresh`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ refresh_token: oldRefresh }),
    });
    expect(replay.status).toBe(401);
    expect((await ws.closed).code).toBe(StreamCloseCode.REVOKED);
    expect((await poll).status).toBe(401);
  });

  it('a password change ends the other devices’ streams and keeps this one', async () => {
    const { client, id, password } = await signUp();
    const other = await signIn(id, password);
    const mine = openStream(server.url, client.session?.access_token as string);
    await mine.ready;
    await settled(mine, id);
    const theirs = openStream(server.url, other.session?.access_token as string);
    await theirs.ready;
    const { poll } = await heldPoll(other);
    await client.changePassword({ old_password: password, new_password: 'a brand new password' });
    expect((await theirs.closed).code).toBe(StreamCloseCode.REVOKED);
    const answer = await poll;
    expect(answer.status, await answer.clone().text()).toBe(401);
    // Still open: a frame sent after the change reaches it.
    const rooms = new RoomsApi(client);
    const { room_id } = await rooms.create({ visibility: 'private', name: 'Still here' });
    await mine.waitFor((f) => f.kind === 'event' && f.data.event.room_id === room_id);
    mine.close();
  });

  it('deleting a device ends its streams', async () => {
    const { client, id, password } = await signUp();
    const other = await signIn(id, password);
    const otherDevice = other.session?.device_id as string;
    const ws = openStream(server.url, other.session?.access_token as string);
    await ws.ready;
    await settled(ws, id);
    const { poll } = await heldPoll(other);
    await client.deleteDevice(otherDevice);
    expect((await ws.closed).code).toBe(StreamCloseCode.REVOKED);
    expect((await poll).status).toBe(401);
  });

  it('logout and logout/all end the streams they revoke', async () => {
    const { client, id, password } = await signUp();
    const second = await signIn(id, password);
    const a = openStream(server.url, client.session?.access_token as string);
    await a.ready;
    await settled(a, id);
    const b = openStream(server.url, second.session?.access_token as string);
    await b.ready;
    const { poll } = await heldPoll(second);
    await client.logoutAll();
    expect((await a.closed).code).toBe(StreamCloseCode.REVOKED);
    expect((await b.closed).code).toBe(StreamCloseCode.REVOKED);
    expect((await poll).status).toBe(401);
  });

  it('deactivating the account (admin) ends all its streams', async () => {
    const { client, id } = await signUp();
    const ws = openStream(server.url, client.session?.access_token as string);
    await ws.ready;
    await settled(ws, id);
    const { poll } = await heldPoll(client);
    await server.services.admin.users.deactivate(id, '@some-admin:hs1.test', false);
    expect((await ws.closed).code).toBe(StreamCloseCode.REVOKED);
    expect((await poll).status).toBe(401);
  });

  it('a token deleted without any revocation message still ends its stream (audit), and an expired one too', async () => {
    const { client } = await signUp();
    const ws = openStream(server.url, client.session?.access_token as string);
    await ws.ready;
    // As if the pub/sub message were lost: the row goes, nobody is told.
    await server.services.db('access_tokens').where('id', String(client.session?.access_token).split('_')[1]).delete();
    expect((await ws.closed).code).toBe(StreamCloseCode.AUTH_FAILED);

    await client.refresh();
    const late = openStream(server.url, client.session?.access_token as string);
    await late.ready;
    clock.advance(server.config.auth.access_token_ttl_ms + 1);
    expect(await late.closed).toMatchObject({ code: StreamCloseCode.AUTH_FAILED, reason: 'PARLEY_TOKEN_EXPIRED' });
  });

  it('security: H1 old stream entries are pruned; a position from before them answers reset (socket, long-poll, sdk)', async () => {
    const { client } = await signUp();
    const rooms = new RoomsApi(client);
    const { room_id } = await rooms.create({ visibility: 'private', name: 'Old times' });
    const before = await edge(client);
    await rooms.sendText(room_id, 'ancient');
    clock.advance(server.config.stream.retention_ms + 1);
    await rooms.sendText(room_id, 'recent');
    const pruned = await server.services.streamRetention.prune();
    expect(pruned.deleted).toBeGreaterThan(0);
    expect(pruned.through).toBeGreaterThan(before);
    expect(await server.services.db('stream').where('position', '<=', pruned.through).count<{ count: number }[]>('* as count')).toEqual([
      { count: 0 },
    ]);

    const ws = openStream(server.url, client.session?.access_token as string, before);
    expect((await ws.ready).reset).toBe(true);
    expect(ws.frames).toEqual([]);
    ws.close();

    const res = await client.request<SyncResponse>('GET', `/api/v1/sync?since=${before}&timeout=0`);
    expect(res).toMatchObject({ frames: [], reset: true });
    expect(res.next).toBeGreaterThanOrEqual(pruned.through);

    // From the horizon on, replay is exact again.
    const resumed = await client.request<SyncResponse>('GET', `/api/v1/sync?since=${pruned.through}&timeout=0`);
    expect(resumed.reset).toBe(false);

    // The sdk reports the reset, so apps re-read their rooms (the web client does on reset).
    const stream = new ParleyStream({ client, WebSocket: WebSocket as never, since: before });
    const ready = new Promise<{ reset: boolean; position: number }>((r) => stream.once('ready', (e) => r(e)));
    stream.start();
    expect(await ready).toMatchObject({ reset: true });
    expect(stream.position).toBeGreaterThanOrEqual(pruned.through);
    stream.close();
  });
});
