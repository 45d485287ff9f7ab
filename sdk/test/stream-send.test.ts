import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { ParleyApiError, ParleyClient, ParleyStream } from '../src/index.js';
import { ScriptedStreamServer } from './support/scripted-stream-server.js';

// ParleyStream.send against a scripted server over a real WebSocket; against the real
// homeserver in homeserver/test/sdk-stream.test.ts.

let server: ScriptedStreamServer;
let streams: ParleyStream[];

beforeEach(async () => {
  server = await ScriptedStreamServer.start();
  streams = [];
});

afterEach(async () => {
  for (const s of streams) s.close();
  await server.stop();
});

async function readyStream() {
  const client = new ParleyClient({
    baseUrl: server.baseUrl,
    session: {
      user_id: '@a:hs.test',
      device_id: 'DEV',
      access_token: 'pat_1',
      refresh_token: 'prt_1',
      expires_at_ms: Date.now() + 3600_000,
    },
  });
  const stream = new ParleyStream({ client, WebSocket, random: () => 0, backoff: { initialMs: 10, maxMs: 20 } });
  streams.push(stream);
  const ready = new Promise<void>((resolve) => stream.once('ready', () => resolve()));
  stream.start();
  const peer = await server.nextPeer();
  await peer.handshake();
  peer.ready(1, true);
  await ready;
  return { stream, peer };
}

const content = { msgtype: 'text', body: 'hi' };

describe('ParleyStream.send', () => {
  it('writes a send message and resolves with the sent answer', async () => {
    const { stream, peer } = await readyStream();
    const result = stream.send('!r:hs.test', 'room.message', 'txn-1', content);
    const msg = await peer.next();
    expect(msg).toEqual({ op: 'send', id: expect.any(String), room_id: '!r:hs.test', type: 'room.message', txn_id: 'txn-1', content });
    peer.send({ op: 'sent', id: msg.id, event_id: '$e1', seq: 7 });
    expect(await result).toEqual({ event_id: '$e1', seq: 7 });
  });

  it('matches answers to sends by id, in whatever order they come', async () => {
    const { stream, peer } = await readyStream();
    const one = stream.send('!r:hs.test', 'room.message', 'a', content);
    const two = stream.send('!r:hs.test', 'room.message', 'b', content);
    const [m1, m2] = [await peer.next(), await peer.next()];
    expect(m1.id).not.toBe(m2.id);
    peer.send({ op: 'sent', id: m2.id, event_id: '$two' });
    peer.send({ op: 'sent', id: m1.id, event_id: '$one', seq: 3 });
    expect(await two).toEqual({ event_id: '$two' });
    expect(await one).toEqual({ event_id: '$one', seq: 3 });
  });

  it('rejects with the ParleyApiError HTTP would give (status, code, field, retryAfterMs)', async () => {
    const { stream, peer } = await readyStream();
    const result = stream.send('!r:hs.test', 'room.message', 'txn-2', content);
    const msg = await peer.next();
    peer.send({
      op: 'send_error',
      id: msg.id,
      status: 429,
      error: { code: 'PARLEY_RATE_LIMITED', message: 'too many requests; slow down', retry_after_ms: 1500 },
    });
    const err = await result.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ParleyApiError);
    expect(err).toMatchObject({ status: 429, code: 'PARLEY_RATE_LIMITED', retryAfterMs: 1500 });
    const bad = stream.send('!r:hs.test', 'room.message', 'txn-3', content);
    const m2 = await peer.next();
    peer.send({ op: 'send_error', id: m2.id, status: 400, error: { code: 'PARLEY_INVALID_PARAM', message: 'x', field: 'content.body' } });
    await expect(bad).rejects.toMatchObject({ status: 400, code: 'PARLEY_INVALID_PARAM', field: 'content.body' });
  });

  it('rejects with a network error when the socket drops before the answer, and works again after the reconnect', async () => {
    const { stream, peer } = await readyStream();
    const result = stream.send('!r:hs.test', 'room.message', 'txn-4', content);
    await peer.next();
    peer.ws.terminate();
    await expect(result).rejects.toMatchObject({ name: 'ParleyApiError', status: 0, code: 'PARLEY_NETWORK' });
    const reconnected = new Promise<void>((resolve) => stream.once('ready', () => resolve()));
    const again = await server.nextPeer();
    await again.handshake();
    again.ready(1);
    await reconnected;
    // Retried with the same txn id on the new socket.
    const retried = stream.send('!r:hs.test', 'room.message', 'txn-4', content);
    const msg = await again.next();
    expect(msg.txn_id).toBe('txn-4');
    again.send({ op: 'sent', id: msg.id, event_id: '$e4' });
    expect(await retried).toEqual({ event_id: '$e4' });
  });

  it('rejects at once without a ready socket, and pending sends when closed', async () => {
    const client = new ParleyClient({ baseUrl: server.baseUrl });
    const idle = new ParleyStream({ client, WebSocket });
    await expect(idle.send('!r:hs.test', 'room.message', 't', content)).rejects.toMatchObject({ status: 0, code: 'PARLEY_NETWORK' });
    const { stream, peer } = await readyStream();
    const result = stream.send('!r:hs.test', 'room.message', 'txn-5', content);
    await peer.next();
    stream.close();
    await expect(result).rejects.toMatchObject({ status: 0, code: 'PARLEY_NETWORK' });
    await expect(stream.send('!r:hs.test', 'room.message', 'txn-6', content)).rejects.toMatchObject({ code: 'PARLEY_NETWORK' });
  });
});
