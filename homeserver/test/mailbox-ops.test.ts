import { padBlock } from '@parley/federation/mailbox';
import { AdminMailboxView } from '@parley/schemas';
import { getPublicKey, MailboxClient } from '@parley/sdk';
import { toB64u } from '@parley/sdk/crypto';
import { Value } from '@sinclair/typebox/value';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LAST_USED_GRANULARITY_MS, PURGE_BATCH } from '../src/services/mailbox.js';
import { ManualClock, startTestServer, type TestServer } from './support/server.js';

// Mailbox operations (issue 14, docs/protocol.md): cleanup on a simulated clock, quotas under
// concurrent sends, metrics and the admin view. Real Postgres, HTTP on loopback.
const BLOCK = 1024;
const TTL = 3_600_000;
const PASSWORD = 'correct horse battery';

let server: TestServer;
let clock: ManualClock;
let mailbox: MailboxClient;
let keySeed = 1;

beforeAll(async () => {
  clock = new ManualClock(Date.UTC(2026, 11, 7, 10, 30));
  server = await startTestServer(
    {
      database: { pool_max: 12 },
      mailbox: { block_bytes: BLOCK, ttl_ms: TTL, queue_quota: 3, server_quota_bytes: 6 * BLOCK },
    },
    clock,
  );
  mailbox = new MailboxClient({ now: () => clock.now() });
});
afterAll(async () => {
  await server?.close();
});

const bytes = (text: string) => new TextEncoder().encode(text);
const block = (text: string) => padBlock(bytes(text), BLOCK);

async function newQueue(): Promise<{ send_id: string; receive_id: string }> {
  return server.services.mailbox.createQueue(toB64u(getPublicKey(new Uint8Array(32).fill(keySeed++))), '192.0.2.1');
}

async function count(table: string): Promise<number> {
  return Number((await server.services.db(table).count<{ n: string }[]>({ n: '*' }))[0]?.n);
}

async function reset(): Promise<void> {
  await server.services.db('mailbox_queues').delete();
}

describe('mailbox quotas under concurrent sends', () => {
  it('forty concurrent sends to twelve queues never pass the per-server quota', async () => {
    await reset();
    const queues = await Promise.all(Array.from({ length: 12 }, () => newQueue()));
    const results = await Promise.allSettled(
      Array.from({ length: 40 }, (_, i) =>
        server.services.mailbox.send(queues[i % queues.length]?.send_id ?? '', block(`m${i}`), `198.51.100.${i}`),
      ),
    );
    const refused = results.filter((r) => r.status === 'rejected');
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(6);
    for (const r of refused) expect((r as PromiseRejectedResult).reason).toMatchObject({ status: 429, code: 'PARLEY_QUOTA_EXCEEDED' });
    expect(await count('mailbox_messages')).toBe(6);
  });

  it('twenty concurrent sends to one queue never pass the per-queue quota', async () => {
    await reset();
    const queue = await newQueue();
    const results = await Promise.allSettled(
      Array.from({ length: 20 }, (_, i) => server.services.mailbox.send(queue.send_id, block(`m${i}`), `198.51.100.${i}`)),
    );
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(3);
    const reasons = results.flatMap((r) => (r.status === 'rejected' ? [(r.reason as Error).message] : []));
    expect(reasons.every((m) => /3 blobs \(mailbox.queue_quota\)/.test(m))).toBe(true);
    expect(await count('mailbox_messages')).toBe(3);
  });
});

describe('mailbox cleanup', () => {
  it('drops queues neither sent to nor read for the retention period, keeps the ones in use', async () => {
    await reset();
    const idle = await mailbox.createQueue(server.url);
    const read = await mailbox.createQueue(server.url);
    const sent = await mailbox.createQueue(server.url);
    clock.advance(TTL);
    await mailbox.receive(read);
    await mailbox.send(server.url, sent.sendId, bytes('keeps it alive'));
    // Not yet: last use is kept to the hour, so a queue goes only once the whole hour is past the TTL.
    expect(await server.services.mailbox.purge()).toEqual({ blobs: 0, queues: 0 });
    clock.advance(LAST_USED_GRANULARITY_MS / 2 + 1);
    expect(await server.services.mailbox.purge()).toEqual({ blobs: 0, queues: 1 });
    await expect(mailbox.receive(idle)).rejects.toMatchObject({ status: 404 });
    await expect(mailbox.send(server.url, idle.sendId, bytes('x'))).rejects.toMatchObject({ status: 404 });
    expect((await mailbox.receive(read)).blobs).toEqual([]);
    expect((await mailbox.receive(sent)).blobs.map((b) => new TextDecoder().decode(b.data))).toEqual(['keeps it alive']);
    // The blob sent half an hour ago is still within its TTL; past it, the purge drops it and later the queues.
    clock.advance(TTL);
    expect(await server.services.mailbox.purge()).toEqual({ blobs: 1, queues: 0 });
    clock.advance(TTL + LAST_USED_GRANULARITY_MS);
    expect(await server.services.mailbox.purge()).toEqual({ blobs: 0, queues: 2 });
    expect(await count('mailbox_queues')).toBe(0);
  });

  it('one run deletes at most PURGE_BATCH blocks and PURGE_BATCH queues; the next run takes the rest', async () => {
    await reset();
    const now = clock.now();
    const old = now - 10 * TTL;
    const db = server.services.db;
    // Written directly: far more than the quotas let senders deposit.
    const rows = Array.from({ length: PURGE_BATCH + 7 }, (_, i) => ({
      receive_id: `r${String(i).padStart(31, '0')}`,
      send_id: `s${String(i).padStart(31, '0')}`,
      queue_key: 'A'.repeat(43),
      created_ts: old,
      last_used_ts: i < 3 ? now : old,
    }));
    const ids: number[] = [];
    for (let i = 0; i < rows.length; i += 500) {
      ids.push(
        ...(
          await db('mailbox_queues')
            .insert(rows.slice(i, i + 500))
            .returning('id')
        ).map((r: { id: number }) => Number(r.id)),
      );
    }
    const live = ids.slice(0, 3);
    const messages = Array.from({ length: PURGE_BATCH + 5 }, (_, i) => ({
      queue_id: live[i % 3],
      msg_id: `m${String(i).padStart(21, '0')}`,
      block: Buffer.alloc(BLOCK),
      created_ts: old,
      expires_ts: old + TTL,
    }));
    for (let i = 0; i < messages.length; i += 500) await db('mailbox_messages').insert(messages.slice(i, i + 500));
    expect(await server.services.mailbox.purge()).toEqual({ blobs: PURGE_BATCH, queues: PURGE_BATCH });
    expect(await server.services.mailbox.purge()).toEqual({ blobs: 5, queues: 4 });
    expect(await server.services.mailbox.purge()).toEqual({ blobs: 0, queues: 0 });
    expect(await count('mailbox_queues')).toBe(3);
  });
});

describe('mailbox metrics and admin view', () => {
  let adminToken: string;
  let userToken: string;
  beforeAll(async () => {
    await server.services.accounts.createUser('root', PASSWORD, true);
    adminToken = (await server.client().login({ username: 'root', password: PASSWORD })).access_token;
    userToken = (await server.client().register({ username: 'plain', password: PASSWORD })).access_token;
  });

  it('counts queues, blocks, bytes and refusals by reason on /metrics', async () => {
    await reset();
    const queue = await mailbox.createQueue(server.url);
    for (let i = 0; i < 3; i++) await mailbox.send(server.url, queue.sendId, bytes(`b${i}`));
    await expect(mailbox.send(server.url, queue.sendId, bytes('one too many'))).rejects.toMatchObject({ status: 429 });
    const forged = await mailbox.createQueue(server.url);
    await expect(mailbox.receive({ ...queue, secretKey: forged.secretKey })).rejects.toMatchObject({ status: 401 });
    const text = await (await fetch(`${server.url}/metrics`)).text();
    expect(text).toContain('parley_mailbox_usage{kind="queues"} 2');
    expect(text).toContain('parley_mailbox_usage{kind="blocks"} 3');
    expect(text).toContain(`parley_mailbox_usage{kind="bytes"} ${3 * BLOCK}`);
    const refusals = (reason: string) => Number(new RegExp(`parley_mailbox_refusals_total\\{reason="${reason}"\\} (\\d+)`).exec(text)?.[1]);
    expect(refusals('queue_quota')).toBeGreaterThanOrEqual(1);
    expect(refusals('auth')).toBeGreaterThanOrEqual(1);
    for (const id of [queue.sendId, queue.receiveId]) expect(text).not.toContain(id);
  });

  it('GET /api/v1/admin/mailbox: limits, usage and refusals for admins only, naming no queue or user', async () => {
    await reset();
    const queue = await mailbox.createQueue(server.url);
    for (let i = 0; i < 3; i++) await mailbox.send(server.url, queue.sendId, bytes(`b${i}`));
    const other = await mailbox.createQueue(server.url);
    await mailbox.send(server.url, other.sendId, bytes('one'));
    const get = (token?: string) =>
      fetch(`${server.url}/api/v1/admin/mailbox`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
    expect((await get()).status).toBe(401);
    expect((await get(userToken)).status).toBe(403);
    const res = await get(adminToken);
    expect(res.status).toBe(200);
    const text = await res.text();
    const view = JSON.parse(text) as AdminMailboxView;
    expect(Value.Check(AdminMailboxView, view)).toBe(true);
    expect(view.limits).toMatchObject({
      block_bytes: BLOCK,
      queue_quota: 3,
      server_quota_bytes: 6 * BLOCK,
      ttl_ms: TTL,
      idle_queue_ttl_ms: TTL,
    });
    expect(view.usage).toMatchObject({ queues: 2, blobs: 4, bytes: 4 * BLOCK, full_queues: 1, fullest_queue_blobs: 3, expired_blobs: 0 });
    expect(view.usage.server_quota_used).toBeCloseTo(4 / 6);
    expect(view.refusals.queue_quota).toBeGreaterThanOrEqual(1);
    for (const id of [queue.sendId, queue.receiveId, other.sendId, other.receiveId, 'root', 'plain']) expect(text).not.toContain(id);
  });
});
