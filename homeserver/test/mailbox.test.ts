import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { newQueueIds, padBlock } from '@parley/federation/mailbox';
import { getPublicKey, isParleyApiError, MailboxClient, type MailboxQueue } from '@parley/sdk';
import { toB64u } from '@parley/sdk/crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../src/logger.js';
import { startHomeserver } from '../src/server.js';
import { createTestDatabase } from './support/postgres.js';
import { createTestRedis, type TestRedis } from './support/redis.js';
import { ManualClock, startTestServer, type TestServer, testConfig } from './support/server.js';

// Mailbox queues (issue 14, docs/protocol.md) on a real server: Postgres, HTTP on loopback.
const BLOCK = 4096;
const TTL = 3_600_000;

let server: TestServer;
let clock: ManualClock;
let mailbox: MailboxClient;

beforeAll(async () => {
  clock = new ManualClock();
  server = await startTestServer({ mailbox: { block_bytes: BLOCK, ttl_ms: TTL } }, clock);
  mailbox = new MailboxClient({ now: () => clock.now() });
});
afterAll(async () => {
  await server?.close();
});

async function refusal(p: Promise<unknown>): Promise<{ status: number; code: string; field: string | undefined; message: string }> {
  try {
    await p;
  } catch (err) {
    if (isParleyApiError(err)) return { status: err.status, code: err.code, field: err.field, message: err.message };
    throw err;
  }
  throw new Error('expected a refusal');
}

async function raw(method: string, path: string, init: { body?: BodyInit; headers?: Record<string, string> } = {}) {
  const res = await fetch(`${server.url}${path}`, { method, ...init });
  return {
    status: res.status,
    body: (await res.json().catch(() => null)) as { error?: { code: string; field?: string; message: string } } | null,
  };
}

const bytes = (text: string) => new TextEncoder().encode(text);

describe('mailbox queues', () => {
  it('creates a queue, sends without an account, receives and acknowledges with the queue key (sdk)', async () => {
    const queue = await mailbox.createQueue(server.url);
    expect(queue.limits).toEqual({ block_bytes: BLOCK, max_blob_bytes: BLOCK - 4, queue_quota: 128, ttl_ms: TTL });
    const first = await mailbox.send(server.url, queue.sendId, bytes('welcome ciphertext'));
    await mailbox.send(server.url, queue.sendId, new Uint8Array(0));
    const { blobs, more } = await mailbox.receive(queue);
    expect(more).toBe(false);
    expect(blobs.map((b) => new TextDecoder().decode(b.data))).toEqual(['welcome ciphertext', '']);
    expect(blobs[0]?.msgId).toBe(first);
    for (const b of blobs) await mailbox.ack(queue, b.msgId);
    expect((await mailbox.receive(queue)).blobs).toEqual([]);
    // An acknowledged blob is gone: acknowledging again says so.
    expect(await refusal(mailbox.ack(queue, first))).toMatchObject({ status: 404 });
  });

  it('refuses receive, acknowledge and delete signed by another key, or unsigned (401)', async () => {
    const queue = await mailbox.createQueue(server.url);
    await mailbox.send(server.url, queue.sendId, bytes('x'));
    const stranger = await mailbox.createQueue(server.url);
    const forged: MailboxQueue = { ...queue, secretKey: stranger.secretKey };
    expect(await refusal(mailbox.receive(forged))).toMatchObject({ status: 401, code: 'PARLEY_FED_BAD_SIGNATURE' });
    const [blob] = (await mailbox.receive(queue)).blobs;
    expect(await refusal(mailbox.ack(forged, blob?.msgId ?? ''))).toMatchObject({ status: 401 });
    expect(await refusal(mailbox.deleteQueue(forged))).toMatchObject({ status: 401 });
    const unsigned = await raw('GET', `/mailbox/v1/queues/${queue.receiveId}/messages`);
    expect(unsigned.status).toBe(401);
    expect(unsigned.body?.error?.code).toBe('PARLEY_FED_BAD_AUTH');
    // A signature for one queue's path does not open another queue.
    const path = `/mailbox/v1/queues/${queue.receiveId}/messages`;
    const header = mailbox.signRequest(queue, 'GET', path);
    expect((await raw('GET', `/mailbox/v1/queues/${stranger.receiveId}/messages`, { headers: { authorization: header } })).status).toBe(
      401,
    );
    // Still readable by its owner.
    expect((await mailbox.receive(queue)).blobs).toHaveLength(1);
  });

  it('refuses a signed request replayed, inside or outside the time window', async () => {
    const queue = await mailbox.createQueue(server.url);
    const path = `/mailbox/v1/queues/${queue.receiveId}/messages`;
    const header = mailbox.signRequest(queue, 'GET', path);
    expect((await raw('GET', path, { headers: { authorization: header } })).status).toBe(200);
    const again = await raw('GET', path, { headers: { authorization: header } });
    expect(again.status).toBe(401);
    expect(again.body?.error?.code).toBe('PARLEY_FED_STALE_REQUEST');
    // Signed now, presented six minutes later (past the ±5 min window).
    const later = mailbox.signRequest(queue, 'GET', path);
    clock.advance(6 * 60_000);
    const stale = await raw('GET', path, { headers: { authorization: later } });
    expect(stale.status).toBe(401);
    expect(stale.body?.error?.message).toMatch(/from the server's clock/);
    // A GET signature does not authorise a DELETE of the same path.
    const getSig = mailbox.signRequest(queue, 'GET', `/mailbox/v1/queues/${queue.receiveId}`);
    expect((await raw('DELETE', `/mailbox/v1/queues/${queue.receiveId}`, { headers: { authorization: getSig } })).status).toBe(401);
  });

  it('a send ID cannot read or delete, a receive ID cannot send, and neither is derived from the other', async () => {
    const queue = await mailbox.createQueue(server.url);
    await mailbox.send(server.url, queue.sendId, bytes('secret'));
    const asSend: MailboxQueue = { ...queue, receiveId: queue.sendId };
    expect(await refusal(mailbox.receive(asSend))).toMatchObject({ status: 404 });
    expect(await refusal(mailbox.deleteQueue(asSend))).toMatchObject({ status: 404 });
    expect(await refusal(mailbox.send(server.url, queue.receiveId, bytes('x')))).toMatchObject({ status: 404 });

    // The two IDs are separate draws from the random source: neither is a function of the other.
    const draws: Uint8Array[] = [];
    const ids = newQueueIds((n) => {
      const b = new Uint8Array(n).fill(draws.length + 1);
      draws.push(b);
      return b;
    });
    expect(draws.map((d) => d.length)).toEqual([24, 24]);
    expect(ids).toEqual({
      receiveId: Buffer.from(draws[0] as Uint8Array).toString('base64url'),
      sendId: Buffer.from(draws[1] as Uint8Array).toString('base64url'),
    });
    // And on the server: no fixed XOR or hash relation across queues.
    const xors = new Set<string>();
    for (let i = 0; i < 4; i++) {
      const q = await mailbox.createQueue(server.url);
      const r = Buffer.from(q.receiveId, 'base64url');
      const s = Buffer.from(q.sendId, 'base64url');
      xors.add(Buffer.from(r.map((v, j) => v ^ (s[j] as number))).toString('hex'));
      expect(createHash('sha256').update(s).digest('base64url').slice(0, 32)).not.toBe(q.receiveId);
    }
    expect(xors.size).toBe(4);
  });

  it('the sdk pads every blob to the published block size; the server takes only whole blocks and stores them as sent', async () => {
    const queue = await mailbox.createQueue(server.url);
    // Too big to pad: the sdk refuses before sending.
    await expect(mailbox.send(server.url, queue.sendId, new Uint8Array(BLOCK - 3))).rejects.toThrow(RangeError);
    await mailbox.send(server.url, queue.sendId, new Uint8Array(BLOCK - 4).fill(7));
    await mailbox.send(server.url, queue.sendId, bytes('short'));
    // What went over the wire: a raw body that is not exactly one block is refused.
    const put = (body: Uint8Array) =>
      raw('PUT', `/mailbox/v1/send/${queue.sendId}`, {
        body: new Uint8Array(body),
        headers: { 'content-type': 'application/octet-stream' },
      });
    expect(await put(bytes('unpadded'))).toMatchObject({ status: 400, body: { error: { field: 'body' } } });
    expect((await put(new Uint8Array(BLOCK - 1))).body?.error?.message).toMatch(/exactly 4096 bytes/);
    expect(await put(new Uint8Array(BLOCK + 1))).toMatchObject({ status: 413, body: { error: { code: 'PARLEY_TOO_LARGE' } } });
    const { blobs, refused } = await mailbox.receive(queue);
    expect(refused).toEqual([]);
    expect(blobs.map((b) => b.data.length)).toEqual([BLOCK - 4, 5]);
    expect(new TextDecoder().decode(blobs[1]?.data)).toBe('short');
    const sizes = await server.services.db.raw<{ rows: { n: number }[] }>('select distinct octet_length(block) as n from mailbox_messages');
    expect(sizes.rows.map((r) => Number(r.n))).toEqual([BLOCK]);
    for (const b of blobs) await mailbox.ack(queue, b.msgId);
  });

  it('a sender whose cached block size is stale (the server was reconfigured) asks again and resends once', async () => {
    const queue = await mailbox.createQueue(server.url);
    let stale = true;
    const client = new MailboxClient({
      fetch: async (input, init) => {
        const res = await fetch(input, init);
        if (stale && String(input).endsWith('/mailbox/v1/limits')) {
          stale = false;
          return new Response(JSON.stringify({ ...(await res.json()), block_bytes: BLOCK / 2 }), { status: 200 });
        }
        return res;
      },
    });
    await client.send(server.url, queue.sendId, bytes('after a restart'));
    const { blobs } = await mailbox.receive(queue);
    expect(blobs.map((b) => new TextDecoder().decode(b.data))).toEqual(['after a restart']);
  });

  it('the receiver refuses blocks with bad padding (a lying length, non-zero padding) and lists them to acknowledge', async () => {
    const queue = await mailbox.createQueue(server.url);
    const put = async (block: Uint8Array) =>
      (
        (await (await fetch(`${server.url}/mailbox/v1/send/${queue.sendId}`, { method: 'PUT', body: new Uint8Array(block) })).json()) as {
          msg_id: string;
        }
      ).msg_id;
    const lying = padBlock(bytes('hello'), BLOCK);
    new DataView(lying.buffer).setUint32(0, BLOCK - 3, false);
    const dirty = padBlock(bytes('hello'), BLOCK);
    dirty[BLOCK - 1] = 1;
    const good = padBlock(bytes('fine'), BLOCK);
    const bad = [await put(lying), await put(dirty)];
    await put(good);
    const { blobs, refused } = await mailbox.receive(queue);
    expect(refused).toEqual(bad);
    expect(blobs.map((b) => new TextDecoder().decode(b.data))).toEqual(['fine']);
  });

  it('holds 128 blobs per queue and refuses the 129th with a clear 429 until one is acknowledged', async () => {
    const queue = await mailbox.createQueue(server.url);
    for (let i = 0; i < 128; i++) await mailbox.send(server.url, queue.sendId, bytes(`m${i}`));
    const full = await refusal(mailbox.send(server.url, queue.sendId, bytes('m128')));
    expect(full).toMatchObject({ status: 429, code: 'PARLEY_QUOTA_EXCEEDED' });
    expect(full.message).toMatch(/128 blobs \(mailbox.queue_quota\)/);
    const { blobs, more } = await mailbox.receive(queue);
    expect(blobs).toHaveLength(16);
    expect(more).toBe(true);
    await mailbox.ack(queue, blobs[0]?.msgId ?? '');
    await mailbox.send(server.url, queue.sendId, bytes('m128'));
  });

  it('drops blobs after the TTL: unreadable at once, removed by the purge', async () => {
    const queue = await mailbox.createQueue(server.url);
    await mailbox.send(server.url, queue.sendId, bytes('old'));
    clock.advance(TTL / 2);
    await mailbox.send(server.url, queue.sendId, bytes('newer'));
    clock.advance(TTL / 2);
    const { blobs } = await mailbox.receive(queue);
    expect(blobs.map((b) => new TextDecoder().decode(b.data))).toEqual(['newer']);
    const count = async () =>
      Number(
        (
          await server.services
            .db('mailbox_messages as m')
            .join('mailbox_queues as q', 'q.id', 'm.queue_id')
            .where('q.receive_id', queue.receiveId)
            .count<{ n: string }[]>({ n: '*' })
        )[0]?.n,
      );
    expect(await count()).toBe(2);
    expect((await server.services.mailbox.purge()).blobs).toBeGreaterThanOrEqual(1);
    expect(await count()).toBe(1);
  });

  it('deleting a queue removes its blobs and ends its send ID', async () => {
    const queue = await mailbox.createQueue(server.url);
    await mailbox.send(server.url, queue.sendId, bytes('x'));
    await mailbox.deleteQueue(queue);
    expect(await refusal(mailbox.send(server.url, queue.sendId, bytes('y')))).toMatchObject({ status: 404 });
    expect(await refusal(mailbox.receive(queue))).toMatchObject({ status: 404 });
  });

  it('keeps no user, device, token or address in the mailbox tables', async () => {
    const columns = await server.services
      .db('information_schema.columns')
      .select('table_name', 'column_name')
      .whereIn('table_name', ['mailbox_queues', 'mailbox_messages'])
      .orderBy(['table_name', 'column_name']);
    expect(columns.map((c) => `${c.table_name}.${c.column_name}`)).toEqual([
      'mailbox_messages.block',
      'mailbox_messages.created_ts',
      'mailbox_messages.expires_ts',
      'mailbox_messages.msg_id',
      'mailbox_messages.queue_id',
      'mailbox_messages.seq',
      'mailbox_queues.created_ts',
      'mailbox_queues.id',
      'mailbox_queues.last_used_ts',
      'mailbox_queues.queue_key',
      'mailbox_queues.receive_id',
      'mailbox_queues.send_id',
    ]);
    // A signed-in user who creates a queue leaves nothing of the account behind.
    const token = (await server.client().register({ username: 'mailboxowner', password: 'correct horse battery staple' })).access_token;
    const res = await fetch(`${server.url}/mailbox/v1/queues`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ queue_key: toB64u(getPublicKey(new Uint8Array(32).fill(9))) }),
    });
    expect(res.status).toBe(201);
    const dump = JSON.stringify(await server.services.db('mailbox_queues').select('*'));
    expect(dump).not.toContain('mailboxowner');
    expect(dump).not.toContain(token);
  });

  it('answers bad input with a 4xx naming the field', async () => {
    for (const body of [
      {},
      { queue_key: 'short' },
      { queue_key: 'A'.repeat(43) },
      { queue_key: toB64u(getPublicKey(new Uint8Array(32))), extra: 1 },
    ]) {
      const res = await raw('POST', '/mailbox/v1/queues', { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
      expect(res.status).toBe(400);
      expect(res.body?.error?.field).toMatch(/queue_key|extra|^$/);
    }
    const badSend = await raw('PUT', '/mailbox/v1/send/not-an-id', { body: 'x' });
    expect(badSend).toMatchObject({ status: 400, body: { error: { field: 'sendId' } } });
    const badRecv = await raw('GET', '/mailbox/v1/queues/nope/messages');
    expect(badRecv).toMatchObject({ status: 400, body: { error: { field: 'receiveId' } } });
    const queue = await mailbox.createQueue(server.url);
    const badAck = await raw('DELETE', `/mailbox/v1/queues/${queue.receiveId}/messages/bad!`);
    expect(badAck).toMatchObject({ status: 400, body: { error: { field: 'msgId' } } });
    const badAuth = await raw('GET', `/mailbox/v1/queues/${queue.receiveId}/messages`, { headers: { authorization: 'ParleyQueue ts=1' } });
    expect(badAuth.status).toBe(401);
  });
});

describe('mailbox limits per address', () => {
  let limited: TestServer;
  beforeAll(async () => {
    limited = await startTestServer({
      rate_limits: { enabled: true },
      bootstrap: { announce: true },
      mailbox: {
        create_per_ip: { burst: 2, per_minute: 1 },
        send_per_ip: { burst: 3, per_minute: 1 },
        // Room for five blocks on the whole server.
        server_quota_bytes: 5 * 16384,
      },
    });
  });
  afterAll(async () => {
    await limited?.close();
  });

  it('limits queue creation and sends per IP with 429 and a retry delay', async () => {
    const client = new MailboxClient();
    const queue = await client.createQueue(limited.url);
    await client.createQueue(limited.url);
    const created = await refusal(client.createQueue(limited.url));
    expect(created).toMatchObject({ status: 429, code: 'PARLEY_RATE_LIMITED' });
    for (let i = 0; i < 3; i++) await client.send(limited.url, queue.sendId, bytes(`${i}`));
    expect(await refusal(client.send(limited.url, queue.sendId, bytes('4')))).toMatchObject({ status: 429 });
  });

  it('refuses blobs past the server-wide quota with a clear 429', async () => {
    await limited.services.db('mailbox_messages').delete();
    // Queue creation here is held by the per-IP limit of the test above: go through the service.
    const svc = limited.services.mailbox;
    const { send_id } = await svc.createQueue(toB64u(getPublicKey(new Uint8Array(32).fill(3))), '192.0.2.1');
    for (let i = 0; i < 5; i++) await svc.send(send_id, padBlock(bytes(`${i}`), 16384), `192.0.2.${10 + i}`);
    await expect(svc.send(send_id, padBlock(bytes('6'), 16384), '192.0.2.99')).rejects.toMatchObject({
      status: 429,
      code: 'PARLEY_QUOTA_EXCEEDED',
      message: expect.stringMatching(/mailbox.server_quota_bytes/),
    });
  });

  it('publishes its limits, on /mailbox/v1/limits and in its signed bootstrap descriptor', async () => {
    const res = await fetch(`${limited.url}/mailbox/v1/limits`);
    expect(await res.json()).toEqual({
      enabled: true,
      block_bytes: 16384,
      max_blob_bytes: 16380,
      queue_quota: 128,
      ttl_ms: 21 * 86_400_000,
    });
    const descriptor = limited.services.bootstrap?.ownDescriptor();
    expect(descriptor?.capabilities).toContain('mailbox');
    expect(descriptor?.limits).toEqual({ mailbox_block_bytes: 16384, mailbox_queue_quota: 128, mailbox_ttl_ms: 21 * 86_400_000 });
  });
});

describe('mailbox off', () => {
  let off: TestServer;
  beforeAll(async () => {
    off = await startTestServer({ mailbox: { enabled: false }, bootstrap: { announce: true, capabilities: ['mailbox'] } });
  });
  afterAll(async () => {
    await off?.close();
  });

  it('answers 404 naming the setting and does not advertise a mailbox', async () => {
    const refused = await refusal(new MailboxClient().createQueue(off.url));
    expect(refused).toMatchObject({ status: 404 });
    expect(refused.message).toMatch(/mailbox.enabled/);
    expect(off.services.bootstrap?.ownDescriptor()?.capabilities).not.toContain('mailbox');
  });
});

describe('mailbox logs', () => {
  it('access-log lines name the route template, never a queue ID', async () => {
    const database = await createTestDatabase();
    const dataDir = await mkdtemp(path.join(tmpdir(), 'parley-test-mailbox-'));
    const lines: string[] = [];
    const hs = await startHomeserver(testConfig(database.url, dataDir), {
      log: createLogger('info', { write: (line) => void lines.push(line) }),
    });
    try {
      const client = new MailboxClient();
      const queue = await client.createQueue(hs.url);
      await client.send(hs.url, queue.sendId, bytes('x'));
      const [blob] = (await client.receive(queue)).blobs;
      await client.ack(queue, blob?.msgId ?? '');
      await client.deleteQueue(queue);
      const requests = lines.filter((l) => l.includes('/mailbox/v1'));
      expect(requests.length).toBeGreaterThanOrEqual(5);
      const all = lines.join('');
      for (const id of [queue.receiveId, queue.sendId, blob?.msgId ?? '']) expect(all).not.toContain(id);
    } finally {
      await hs.stop();
      await database.drop();
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});

describe('mailbox with Redis (several processes)', () => {
  let shared: TestServer;
  let redis: TestRedis;
  beforeAll(async () => {
    redis = await createTestRedis();
    shared = await startTestServer({ redis: { url: redis.url, key_prefix: redis.prefix } });
  });
  afterAll(async () => {
    await shared?.close();
    await redis?.cleanup();
  });

  it('remembers used signatures in Redis, so a replay is refused by any process', async () => {
    const client = new MailboxClient();
    const queue = await client.createQueue(shared.url);
    const path = `/mailbox/v1/queues/${queue.receiveId}/messages`;
    const authorization = client.signRequest(queue, 'GET', path);
    expect((await fetch(`${shared.url}${path}`, { headers: { authorization } })).status).toBe(200);
    const replay = await fetch(`${shared.url}${path}`, { headers: { authorization } });
    expect(replay.status).toBe(401);
    const sig = authorization.slice(authorization.indexOf('sig=') + 4);
    const probe = new (await import('ioredis')).Redis(redis.url, { keyPrefix: redis.prefix });
    try {
      expect(await probe.exists(`mailbox-sig:${sig}`)).toBe(1);
    } finally {
      probe.disconnect();
    }
  });

  it('answers hostile bodies and headers with 4xx, never 5xx', async () => {
    const queue = await new MailboxClient().createQueue(shared.url);
    const cases: { method: string; path: string; body?: BodyInit; headers?: Record<string, string>; status: number }[] = [
      { method: 'POST', path: '/mailbox/v1/queues', body: 'not json', headers: { 'content-type': 'application/json' }, status: 400 },
      { method: 'POST', path: '/mailbox/v1/queues', body: '[]', headers: { 'content-type': 'application/json' }, status: 400 },
      { method: 'POST', path: '/mailbox/v1/queues', body: 'queue_key=x', headers: { 'content-type': 'text/plain' }, status: 415 },
      {
        method: 'POST',
        path: '/mailbox/v1/queues',
        body: JSON.stringify({ queue_key: 'x'.repeat(100_000) }),
        headers: { 'content-type': 'application/json' },
        status: 413,
      },
      {
        method: 'GET',
        path: `/mailbox/v1/queues/${queue.receiveId}/messages`,
        headers: { authorization: `ParleyQueue ${'x'.repeat(4000)}` },
        status: 401,
      },
      {
        method: 'GET',
        path: `/mailbox/v1/queues/${queue.receiveId}/messages`,
        headers: { authorization: `ParleyQueue ts=-5,nonce=${'n'.repeat(22)},sig=${'A'.repeat(86)}` },
        status: 401,
      },
      { method: 'PATCH', path: `/mailbox/v1/queues/${queue.receiveId}`, status: 405 },
    ];
    for (const c of cases) {
      const res = await fetch(`${shared.url}${c.path}`, {
        method: c.method,
        headers: c.headers ?? {},
        ...(c.body ? { body: c.body } : {}),
      });
      expect(res.status, `${c.method} ${c.path} ${String(c.body ?? '').slice(0, 20)}`).toBe(c.status);
    }
    // An oversize blob streamed without Content-Length is cut off at the cap: 413.
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < 8; i++) controller.enqueue(new Uint8Array(4096));
        controller.close();
      },
    });
    const chunked = await fetch(`${shared.url}/mailbox/v1/send/${queue.sendId}`, {
      method: 'PUT',
      body: stream,
      duplex: 'half',
    } as RequestInit & { duplex: 'half' });
    expect(chunked.status).toBe(413);
  });
});

describe('mailbox metrics', () => {
  it('counts queues and blocks on /metrics without naming any queue', async () => {
    const queue = await mailbox.createQueue(server.url);
    await mailbox.send(server.url, queue.sendId, bytes('counted'));
    const [queues, blocks] = await Promise.all([
      server.services.db('mailbox_queues').count<{ n: string }[]>({ n: '*' }),
      server.services.db('mailbox_messages').count<{ n: string }[]>({ n: '*' }),
    ]);
    const text = await (await fetch(`${server.url}/metrics`)).text();
    expect(text).toContain(`parley_mailbox_usage{kind="queues"} ${Number(queues[0]?.n)}`);
    expect(text).toContain(`parley_mailbox_usage{kind="blocks"} ${Number(blocks[0]?.n)}`);
    expect(text).toContain('route="/mailbox/v1/send/:sendId"');
    expect(text).not.toContain(queue.sendId);
    expect(text).not.toContain(queue.receiveId);
  });
});
