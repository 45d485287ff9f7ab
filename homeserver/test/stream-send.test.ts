import { SEND_ENVELOPE_MAX_BYTES, StreamCloseCode } from '@parley/schemas';
import { ParleyApiError, type ParleyClient, RoomsApi } from '@parley/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_SENDS_IN_FLIGHT } from '../src/gateway/gateway.js';
import { startFederatedPair } from './support/federated-pair.js';
import { startTestServer, type TestServer } from './support/server.js';
import { bodyOf, openStream, type TestStream } from './support/stream-client.js';

interface Person {
  client: ParleyClient;
  rooms: RoomsApi;
  token: () => string;
}

type Answer = { op: 'sent'; id: string; event_id: string; seq?: number } | { op: 'send_error'; id: string; status: number; error: any };

/** Answers (`sent`/`send_error`) received so far on a socket, by id. */
function answers(stream: TestStream): Map<string, Answer> {
  const byId = new Map<string, Answer>();
  for (const m of stream.messages) if (m.op === 'sent' || m.op === 'send_error') byId.set(m.id as string, m as unknown as Answer);
  return byId;
}

async function answerTo(stream: TestStream, id: string, timeoutMs = 15_000): Promise<Answer> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const found = answers(stream).get(id);
    if (found) return found;
    if (Date.now() > end) throw new Error(`no answer to ${id}; last: ${JSON.stringify(stream.messages.slice(-2))}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function httpStatus(work: Promise<unknown>): Promise<{ status: number; code: string; field: string | undefined }> {
  try {
    await work;
    return { status: 200, code: '', field: undefined };
  } catch (err) {
    if (!(err instanceof ParleyApiError)) throw err;
    return { status: err.status, code: err.code, field: err.field };
  }
}

const text = (body: string) => ({ msgtype: 'text', body });

/** `send` over the stream socket (docs/protocol.md): same semantics as the HTTP send. */
describe('sending over the stream socket', () => {
  let server: TestServer;
  let alice: Person;
  let bob: Person;
  let carol: Person;
  let roomId: string;

  async function person(name: string): Promise<Person> {
    const client = server.client();
    await client.register({ username: name, password: `${name} password` });
    return { client, rooms: new RoomsApi(client), token: () => client.session?.access_token as string };
  }

  beforeAll(async () => {
    server = await startTestServer();
    alice = await person('alice');
    bob = await person('bob');
    carol = await person('carol');
    ({ room_id: roomId } = await alice.rooms.create({ visibility: 'public', name: 'Socket sends' }));
    await bob.rooms.join(roomId);
  });
  afterAll(() => server?.close());

  it('writes the event: it reaches another member’s stream and /messages', async () => {
    const a = openStream(server.url, alice.token());
    const b = openStream(server.url, bob.token());
    await Promise.all([a.ready, b.ready]);
    a.send({ op: 'send', id: 'one', room_id: roomId, type: 'room.message', txn_id: 'sock-1', content: text('over the socket') });
    const answer = await answerTo(a, 'one');
    expect(answer).toMatchObject({ op: 'sent', id: 'one', event_id: expect.any(String), seq: expect.any(Number) });
    const atBob = await b.waitFor((f) => bodyOf(f) === 'over the socket');
    expect(atBob.kind === 'event' && atBob.data.event.event_id).toBe((answer as { event_id: string }).event_id);
    // The sender's own echo carries its txn_id, as after an HTTP send.
    const atAlice = await a.waitFor((f) => bodyOf(f) === 'over the socket');
    expect(atAlice.kind === 'event' && atAlice.data.event.unsigned?.txn_id).toBe('sock-1');
    const page = await bob.rooms.messages(roomId, { limit: 5 });
    expect(page.chunk.filter((e) => e.content.body === 'over the socket').map((e) => e.event_id)).toEqual([
      (answer as { event_id: string }).event_id,
    ]);
    a.close();
    b.close();
  });

  it('is idempotent with the HTTP send: one txn_id, one event, whichever way it came', async () => {
    const a = openStream(server.url, alice.token());
    await a.ready;
    a.send({ op: 'send', id: 'twice', room_id: roomId, type: 'room.message', txn_id: 'both-ways', content: text('sent twice') });
    const overSocket = (await answerTo(a, 'twice')) as { event_id: string };
    const overHttp = await alice.rooms.send(roomId, 'room.message', text('sent twice'), 'both-ways');
    expect(overHttp.event_id).toBe(overSocket.event_id);
    // And the other way round, and a repeat on the socket.
    const first = await alice.rooms.send(roomId, 'room.message', text('http first'), 'http-first');
    a.send({ op: 'send', id: 'again', room_id: roomId, type: 'room.message', txn_id: 'http-first', content: text('http first') });
    a.send({ op: 'send', id: 'again2', room_id: roomId, type: 'room.message', txn_id: 'both-ways', content: text('sent twice') });
    expect(((await answerTo(a, 'again')) as { event_id: string }).event_id).toBe(first.event_id);
    expect(((await answerTo(a, 'again2')) as { event_id: string }).event_id).toBe(overSocket.event_id);
    const page = await alice.rooms.messages(roomId, { limit: 20 });
    expect(page.chunk.filter((e) => e.content.body === 'sent twice')).toHaveLength(1);
    expect(page.chunk.filter((e) => e.content.body === 'http first')).toHaveLength(1);
    a.close();
  });

  it('answers an invalid send with send_error 400 naming the field, and keeps the socket', async () => {
    const a = openStream(server.url, alice.token());
    await a.ready;
    const base = { op: 'send', room_id: roomId, type: 'room.message', txn_id: 'bad-1', content: text('never') };
    const { content: _content, ...noContent } = base;
    a.send({ ...noContent, id: 'no-content' });
    a.send({ ...base, id: 'bad-room', room_id: 'not a room' });
    a.send({ ...base, id: 'x'.repeat(65) });
    a.send({ ...base, id: 'bad-txn', txn_id: 'has space' });
    a.send({ ...base, id: 'bad-body', content: { msgtype: 'text' } });
    a.send({ ...base, id: 'redaction', type: 'room.redaction', content: { redacts: '$x' } });
    const expectations: Array<[string, string]> = [
      ['no-content', 'content'],
      ['bad-room', 'room_id'],
      ['x'.repeat(65), 'id'],
      ['bad-txn', 'txn_id'],
      ['bad-body', 'content.body'],
      ['redaction', 'type'],
    ];
    for (const [id, field] of expectations) {
      const answer = await answerTo(a, id);
      expect(answer, id).toMatchObject({ op: 'send_error', id, status: 400, error: { field, code: expect.stringMatching(/^PARLEY_/) } });
    }
    // The same content refusal as HTTP, word for word.
    const http = await httpStatus(alice.rooms.send(roomId, 'room.message', { msgtype: 'text' }, 'bad-2'));
    expect(((await answerTo(a, 'bad-body')) as { error: { code: string } }).error.code).toBe(http.code);
    // Still open and usable.
    a.send({ ...base, id: 'fine', txn_id: 'after-bad', content: text('after the bad ones') });
    expect((await answerTo(a, 'fine')).op).toBe('sent');
    // Without a readable id there is nobody to answer: closed like any malformed message.
    a.send({ ...base, id: 42 });
    expect((await a.closed).code).toBe(StreamCloseCode.INVALID_MESSAGE);
  });

  it('refuses as HTTP does: 403 to a non-member, 404 for an unknown room', async () => {
    const c = openStream(server.url, carol.token());
    await c.ready;
    c.send({ op: 'send', id: 'nm', room_id: roomId, type: 'room.message', txn_id: 'nm-1', content: text('not a member') });
    c.send({ op: 'send', id: 'nr', room_id: '!nosuchroom:hs1.test', type: 'room.message', txn_id: 'nr-1', content: text('nowhere') });
    const nm = await answerTo(c, 'nm');
    const nr = await answerTo(c, 'nr');
    const httpNm = await httpStatus(carol.rooms.send(roomId, 'room.message', text('not a member'), 'nm-2'));
    const httpNr = await httpStatus(carol.rooms.send('!nosuchroom:hs1.test', 'room.message', text('nowhere'), 'nr-2'));
    expect(nm).toMatchObject({ op: 'send_error', status: 403, error: { code: httpNm.code } });
    expect(httpNm.status).toBe(403);
    expect(nr).toMatchObject({ op: 'send_error', status: 404, error: { code: httpNr.code } });
    expect(httpNr.status).toBe(404);
    c.close();
  });

  it('counts and times sends on /metrics by answer status (they make no HTTP request to count)', async () => {
    const metric = async () => {
      const text = await (await fetch(`${server.url}/metrics`)).text();
      const count = (status: string) =>
        Number(new RegExp(`^parley_stream_sends_total\\{status="${status}"\\} (\\d+)$`, 'm').exec(text)?.[1] ?? 0);
      const timed = Number(/^parley_stream_send_duration_seconds_count (\d+)$/m.exec(text)?.[1] ?? 0);
      return { ok: count('200'), forbidden: count('403'), invalid: count('400'), timed };
    };
    const before = await metric();
    const a = openStream(server.url, alice.token());
    const c = openStream(server.url, carol.token());
    await Promise.all([a.ready, c.ready]);
    a.send({ op: 'send', id: 'm1', room_id: roomId, type: 'room.message', txn_id: 'metric-1', content: text('counted') });
    c.send({ op: 'send', id: 'm2', room_id: roomId, type: 'room.message', txn_id: 'metric-2', content: text('not a member') });
    c.send({ op: 'send', id: 'm3', room_id: roomId, type: 'room.message', txn_id: 'metric-3' });
    await Promise.all([answerTo(a, 'm1'), answerTo(c, 'm2'), answerTo(c, 'm3')]);
    const after = await metric();
    expect(after.ok - before.ok).toBe(1);
    expect(after.forbidden - before.forbidden).toBe(1);
    expect(after.invalid - before.invalid).toBe(1);
    // Timed from being handed over: the invalid one never was.
    expect(after.timed - before.timed).toBe(2);
    a.close();
    c.close();
  });

  it('admits content up to the HTTP body cap and answers 413 beyond it, as HTTP does', async () => {
    const cap = server.config.http.max_json_body_bytes;
    const a = openStream(server.url, alice.token());
    await a.ready;
    // Content of exactly `cap` bytes, in a message with the longest envelope fields.
    const sized = (bytes: number) => {
      const shell = JSON.stringify(text(''));
      return text('y'.repeat(bytes - shell.length));
    };
    const longRoom = `!${'r'.repeat(64)}:${'h'.repeat(255 - 66)}`;
    const atCap = sized(cap);
    expect(Buffer.byteLength(JSON.stringify(atCap))).toBe(cap);
    const message = {
      op: 'send',
      id: 'é'.repeat(64),
      room_id: longRoom,
      type: `a${'b'.repeat(127)}`,
      txn_id: 't'.repeat(64),
      content: atCap,
    };
    expect(Buffer.byteLength(JSON.stringify(message))).toBeLessThanOrEqual(cap + SEND_ENVELOPE_MAX_BYTES);
    a.send(message);
    // Read, validated and refused for its (unknown) room: not closed for its size.
    expect(await answerTo(a, 'é'.repeat(64))).toMatchObject({ op: 'send_error', status: 404 });
    a.send({ op: 'send', id: 'cap', room_id: roomId, type: 'room.message', txn_id: 'at-cap', content: atCap });
    const http = await httpStatus(alice.rooms.send(roomId, 'room.message', atCap, 'at-cap-http'));
    const capAnswer = await answerTo(a, 'cap');
    expect(capAnswer.op === 'sent' ? 200 : capAnswer.status).toBe(http.status);
    const over = sized(cap + 1);
    a.send({ op: 'send', id: 'over', room_id: roomId, type: 'room.message', txn_id: 'over-cap', content: over });
    const httpOver = await httpStatus(alice.rooms.send(roomId, 'room.message', over, 'over-cap-http'));
    expect(httpOver.status).toBe(413);
    expect(await answerTo(a, 'over')).toMatchObject({ op: 'send_error', status: 413, error: { code: httpOver.code } });
    // A message larger than any send may be is cut off by the socket (1009).
    a.send({
      op: 'send',
      id: 'huge',
      room_id: roomId,
      type: 'room.message',
      txn_id: 'huge',
      content: sized(cap + SEND_ENVELOPE_MAX_BYTES + 10),
    });
    expect((await a.closed).code).toBe(StreamCloseCode.TOO_LARGE);
  });

  it('takes 1,000 sends written at once: all answered, in order, none lost or doubled, reading paused meanwhile', async () => {
    const { room_id: busy } = await alice.rooms.create({ visibility: 'public', name: 'Burst' });
    const a = openStream(server.url, alice.token());
    await a.ready;
    const pausesBefore = server.gateway.sendStats.pauses;
    const TOTAL = 1000;
    for (let i = 0; i < TOTAL; i++) {
      a.send({ op: 'send', id: `b${i}`, room_id: busy, type: 'room.message', txn_id: `burst-${i}`, content: text(`burst ${i}`) });
    }
    const end = Date.now() + 60_000;
    while (answers(a).size < TOTAL && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    const got = answers(a);
    expect(got.size).toBe(TOTAL);
    const sent = Array.from({ length: TOTAL }, (_, i) => got.get(`b${i}`) as { op: string; event_id: string; seq: number });
    expect(sent.every((s) => s.op === 'sent')).toBe(true);
    expect(new Set(sent.map((s) => s.event_id)).size).toBe(TOTAL);
    // Sequenced in the order they were written.
    for (let i = 1; i < TOTAL; i++) expect(sent[i]!.seq).toBeGreaterThan(sent[i - 1]!.seq);
    // The room log holds each once, in order.
    const bodies: string[] = [];
    let from: string | undefined;
    for (;;) {
      const page = await alice.rooms.messages(busy, { dir: 'f', limit: 100, ...(from ? { from } : {}) });
      for (const e of page.chunk)
        if (typeof e.content.body === 'string' && e.content.body.startsWith('burst ')) bodies.push(e.content.body);
      if (page.chunk.length === 0 || !page.end || page.end === from) break;
      from = page.end;
    }
    expect(bodies).toEqual(Array.from({ length: TOTAL }, (_, i) => `burst ${i}`));
    // More than MAX_SENDS_IN_FLIGHT arrived at once: the gateway stopped reading the socket.
    expect(TOTAL).toBeGreaterThan(MAX_SENDS_IN_FLIGHT);
    expect(server.gateway.sendStats.pauses).toBeGreaterThan(pausesBefore);
    expect(server.gateway.sendStats.inFlight).toBe(0);
    a.close();
  }, 90_000);

  it('refuses a send before identify like any other op', async () => {
    const s = openStream(server.url, null);
    await new Promise<void>((resolve) => {
      const check = () => (s.messages.some((m) => m.op === 'hello') ? resolve() : setTimeout(check, 10));
      check();
    });
    s.send({ op: 'send', id: 'early', room_id: roomId, type: 'room.message', txn_id: 'early', content: text('too early') });
    expect((await s.closed).code).toBe(StreamCloseCode.NOT_IDENTIFIED);
    const page = await alice.rooms.messages(roomId, { limit: 10 });
    expect(page.chunk.some((e) => e.content.body === 'too early')).toBe(false);
  });

  it('writes nothing that had not been handed over when the socket is closed for revocation', async () => {
    const dave = await person('dave');
    await dave.rooms.join(roomId);
    const d = openStream(server.url, dave.token());
    await d.ready;
    // RoomService holds every send at a gate: MAX_SENDS_IN_FLIGHT are handed over, the rest wait in the gateway.
    const rooms = server.services.rooms;
    const original = rooms.send;
    let open!: () => void;
    const gate = new Promise<void>((resolve) => {
      open = resolve;
    });
    let handedOver = 0;
    rooms.send = async (...args: Parameters<typeof original>) => {
      handedOver++;
      await gate;
      return original.apply(rooms, args);
    };
    try {
      const TOTAL = MAX_SENDS_IN_FLIGHT + 44;
      for (let i = 0; i < TOTAL; i++) {
        d.send({ op: 'send', id: `r${i}`, room_id: roomId, type: 'room.message', txn_id: `rev-${i}`, content: text(`rev ${i}`) });
      }
      const end = Date.now() + 10_000;
      while (handedOver < MAX_SENDS_IN_FLIGHT && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
      expect(handedOver).toBe(MAX_SENDS_IN_FLIGHT);
      await dave.client.logout();
      expect((await d.closed).code).toBe(StreamCloseCode.REVOKED);
    } finally {
      open();
      rooms.send = original;
    }
    // The sends handed over before the revocation complete; none of the others was written.
    const written = async () => {
      const page = await alice.rooms.messages(roomId, { limit: 1000 });
      return page.chunk.filter((e) => String(e.content.body).startsWith('rev ')).map((e) => e.content.body as string);
    };
    const end = Date.now() + 15_000;
    while ((await written()).length < MAX_SENDS_IN_FLIGHT && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
    await new Promise((r) => setTimeout(r, 300));
    const bodies = await written();
    expect(handedOver).toBe(MAX_SENDS_IN_FLIGHT);
    expect(bodies.sort()).toEqual(Array.from({ length: MAX_SENDS_IN_FLIGHT }, (_, i) => `rev ${i}`).sort());
  }, 60_000);
});

describe('sending over the stream socket in a federated room', () => {
  let a: TestServer;
  let b: TestServer;

  beforeAll(async () => {
    ({ a, b } = await startFederatedPair());
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
  });

  it('a member on the participating server sends over its socket; the host writes it once', async () => {
    const alice = a.client();
    await alice.register({ username: 'alice', password: 'alice password' });
    const bob = b.client();
    await bob.register({ username: 'bob', password: 'bob password' });
    const aliceRooms = new RoomsApi(alice);
    const { room_id: roomId } = await aliceRooms.create({ visibility: 'public', name: 'Across' });
    await new RoomsApi(bob).join(roomId);
    const s = openStream(b.url, bob.session?.access_token as string);
    await s.ready;
    s.send({ op: 'send', id: 'fed', room_id: roomId, type: 'room.message', txn_id: 'fed-1', content: text('from hs2 over the socket') });
    const answer = await answerTo(s, 'fed', 30_000);
    expect(answer).toMatchObject({ op: 'sent', id: 'fed', event_id: expect.any(String) });
    // Repeated over HTTP on hs2: the same event.
    const again = await new RoomsApi(bob).send(roomId, 'room.message', text('from hs2 over the socket'), 'fed-1');
    expect(again.event_id).toBe((answer as { event_id: string }).event_id);
    const end = Date.now() + 20_000;
    let copies = 0;
    while (Date.now() < end) {
      const page = await aliceRooms.messages(roomId, { limit: 10 });
      copies = page.chunk.filter((e) => e.content.body === 'from hs2 over the socket').length;
      if (copies > 0) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(copies).toBe(1);
    await s.waitFor((f) => bodyOf(f) === 'from hs2 over the socket', 20_000);
    s.close();
  }, 60_000);
});
