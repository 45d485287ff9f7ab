import { StreamCloseCode } from '@parley/schemas';
import { ParleyApiError, ParleyClient, ParleyStream, RoomsApi } from '@parley/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startTestServer, type TestServer } from './support/server.js';

/** The sdk's stream client against a real homeserver: reconnect, resume, revocation, long-poll. */
describe('sdk ParleyStream against the homeserver', () => {
  let server: TestServer;
  let sender: RoomsApi;
  let roomId: string;

  beforeAll(async () => {
    server = await startTestServer();
    const s = server.client();
    await s.register({ username: 'sender', password: 'sender password' });
    sender = new RoomsApi(s);
    ({ room_id: roomId } = await sender.create({ visibility: 'public', name: 'SDK' }));
  });
  afterAll(() => server?.close());

  async function receiver(name: string, longPoll: boolean | 'auto' = false) {
    const client = new ParleyClient({ baseUrl: server.url });
    await client.register({ username: name, password: `${name} password` });
    await new RoomsApi(client).join(roomId);
    const bodies: string[] = [];
    const stream = new ParleyStream({
      client,
      WebSocket: longPoll === true ? undefined : (WebSocket as never),
      longPoll,
      backoff: { initialMs: 20, maxMs: 200 },
    });
    stream.on('event', (f) => {
      const body = f.data.event.content.body;
      if (typeof body === 'string' && body.startsWith('sdk ')) bodies.push(body);
    });
    const ready = new Promise<void>((resolve) => stream.once('ready', () => resolve()));
    stream.start();
    await ready;
    return { client, stream, bodies };
  }

  const until = async (cond: () => boolean, ms = 15_000) => {
    const t0 = Date.now();
    while (!cond() && Date.now() - t0 < ms) await new Promise((r) => setTimeout(r, 20));
  };

  it('reconnects after the server drops every socket and misses nothing', async () => {
    const r = await receiver('reader');
    let reconnects = 0;
    r.stream.on('reconnecting', () => reconnects++);
    for (let i = 0; i < 60; i++) {
      await sender.sendText(roomId, `sdk ${i}`);
      if (i % 20 === 10) server.gateway.disconnectAll(StreamCloseCode.RESUME, 'test: resume please');
    }
    const expected = Array.from({ length: 60 }, (_, i) => `sdk ${i}`);
    await until(() => r.bodies.length >= 60);
    expect(r.bodies).toEqual(expected);
    expect(reconnects).toBeGreaterThanOrEqual(3);
    r.stream.close();
  });

  it('stops with `revoked` when the device is signed out', async () => {
    const r = await receiver('leaver');
    const revoked = new Promise<void>((resolve) => r.stream.once('revoked', () => resolve()));
    await r.client.logout();
    await revoked;
    r.stream.close();
  });

  it('send goes over the socket: the event reaches others, a repeat answers the same event, refusals are ParleyApiErrors', async () => {
    const w = await receiver('writer');
    const r = await receiver('watcher');
    const sent = await w.stream.send(roomId, 'room.message', 'sdk-send-1', { msgtype: 'text', body: 'sdk over the socket' });
    expect(sent.event_id).toMatch(/^\$/);
    await until(() => r.bodies.includes('sdk over the socket'));
    expect(r.bodies.filter((b) => b === 'sdk over the socket')).toHaveLength(1);
    // The same txn over the socket and over HTTP: the same event.
    expect((await w.stream.send(roomId, 'room.message', 'sdk-send-1', { msgtype: 'text', body: 'sdk over the socket' })).event_id).toBe(
      sent.event_id,
    );
    expect((await new RoomsApi(w.client).send(roomId, 'room.message', { msgtype: 'text', body: 'x' }, 'sdk-send-1')).event_id).toBe(
      sent.event_id,
    );
    const refused = await w.stream
      .send('!nosuchroom:hs1.test', 'room.message', 'sdk-send-2', { msgtype: 'text', body: 'x' })
      .catch((e) => e);
    expect(refused).toBeInstanceOf(ParleyApiError);
    expect(refused).toMatchObject({ status: 404, code: 'PARLEY_NOT_FOUND' });
    const invalid = await w.stream.send(roomId, 'room.message', 'sdk-send-3', { msgtype: 'text' }).catch((e) => e);
    expect(invalid).toMatchObject({ status: 400, field: 'content.body' });
    w.stream.close();
    r.stream.close();
  });

  it('long-poll delivers the same events', async () => {
    const r = await receiver('poller', true);
    for (let i = 0; i < 5; i++) await sender.sendText(roomId, `sdk poll ${i}`);
    await until(() => r.bodies.length >= 5);
    expect(r.bodies).toEqual(Array.from({ length: 5 }, (_, i) => `sdk poll ${i}`));
    r.stream.close();
  });
});
