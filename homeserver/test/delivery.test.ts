import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Redis } from 'ioredis';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDb, type Db, migrateLatest } from '../src/db/database.js';
import { DeliveryEngine, type OutgoingTransaction } from '../src/delivery/engine.js';
import { createLogger } from '../src/logger.js';
import { OutboxRepository } from '../src/repositories/outbox.js';
import { createTestDatabase, type TestDatabase } from './support/postgres.js';
import { createTestRedis, type TestRedis } from './support/redis.js';
import { ManualClock } from './support/server.js';

/** A peer on loopback that records transactions and can be switched off. */
class Peer {
  readonly received: OutgoingTransaction[] = [];
  up = true;
  private server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => {
      body += d;
    });
    req.on('end', () => {
      if (!this.up) {
        res.writeHead(503).end();
        return;
      }
      this.received.push(JSON.parse(body) as OutgoingTransaction);
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  url = '';
  async start(): Promise<void> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', () => r()));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }
  stop(): Promise<void> {
    return new Promise((r) => this.server.close(() => r()));
  }
  events(): number[] {
    return this.received.flatMap((t) => t.events.map((e) => (e as { n: number }).n));
  }
}

const until = async (cond: () => boolean | Promise<boolean>, ms = 15_000) => {
  const t0 = Date.now();
  while (!(await cond())) {
    if (Date.now() - t0 > ms) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 25));
  }
};

describe.each([
  ['in-process scheduler', false],
  ['BullMQ on Redis', true],
])('durable delivery with the %s', (_name, useRedis) => {
  let database: TestDatabase;
  let db: Db;
  let redisInfo: TestRedis | undefined;
  let redis: Redis | null = null;
  let repo: OutboxRepository;
  const peers: Record<string, Peer> = {};
  const clock = new ManualClock();
  let engine: DeliveryEngine;

  const sender = async (destination: string, txn: OutgoingTransaction) => {
    const peer = peers[destination];
    if (!peer) throw new Error(`unknown destination ${destination}`);
    const res = await fetch(`${peer.url}/send/${txn.txnId}`, { method: 'PUT', body: JSON.stringify(txn) });
    if (!res.ok) throw new Error(`peer answered ${res.status}`);
  };

  async function enqueue(destination: string, from: number, count: number, ttlMs = 7 * 86_400_000): Promise<void> {
    await db.transaction(async (trx) => {
      for (let n = from; n < from + count; n++) await repo.enqueue([destination], 'event', { n }, clock.now(), ttlMs, trx);
    });
    engine.notify([destination]);
  }

  beforeAll(async () => {
    database = await createTestDatabase();
    db = createDb(database.url, 5);
    await migrateLatest(db);
    repo = new OutboxRepository(db);
    if (useRedis) {
      redisInfo = await createTestRedis();
      redis = new Redis(redisInfo.url, { keyPrefix: redisInfo.prefix });
    }
    for (const name of ['a.test', 'b.test']) {
      peers[name] = new Peer();
      await (peers[name] as Peer).start();
    }
    engine = new DeliveryEngine(
      repo,
      sender,
      clock,
      () => 0,
      redis,
      { ttlMs: 7 * 86_400_000, concurrency: 4, sweepMs: 200, keyPrefix: redisInfo?.prefix ?? 'parley:' },
      createLogger('silent'),
      new Registry(),
    );
    await engine.start();
  });

  afterAll(async () => {
    await engine?.stop();
    for (const p of Object.values(peers)) await p.stop();
    redis?.disconnect();
    await redisInfo?.cleanup();
    await db?.destroy();
    await database?.drop();
  });

  it('delivers every row in order, in transactions of at most 100 events, to each destination', async () => {
    await enqueue('a.test', 0, 250);
    await enqueue('b.test', 0, 30);
    await until(() => (peers['a.test'] as Peer).events().length >= 250 && (peers['b.test'] as Peer).events().length >= 30);
    expect((peers['a.test'] as Peer).events()).toEqual(Array.from({ length: 250 }, (_, i) => i));
    expect((peers['b.test'] as Peer).events()).toEqual(Array.from({ length: 30 }, (_, i) => i));
    expect(Math.max(...(peers['a.test'] as Peer).received.map((t) => t.events.length))).toBeLessThanOrEqual(100);
    expect((await repo.destination('a.test'))?.state).toBe('up');
  });

  it('keeps rows while a destination is down, backs off, and delivers when it talks to us again', async () => {
    const b = peers['b.test'] as Peer;
    b.up = false;
    const before = b.events().length;
    await enqueue('b.test', 30, 10);
    await until(async () => ((await repo.destination('b.test'))?.failures ?? 0) >= 1);
    const row = await repo.destination('b.test');
    expect(row?.state).toBe('backing_off');
    expect(row?.next_try_ts).toBeGreaterThan(clock.now());
    expect(row?.last_error).toMatch(/503/);
    // Other destinations are not held up.
    await enqueue('a.test', 250, 5);
    await until(() => (peers['a.test'] as Peer).events().length >= 255);
    expect(b.events().length).toBe(before);
    b.up = true;
    await engine.inbound('b.test');
    await until(() => b.events().length >= before + 10);
    expect(b.events().slice(before)).toEqual(Array.from({ length: 10 }, (_, i) => 30 + i));
    // The engine saves the state just after the peer acknowledged the batch.
    await until(async () => (await repo.destination('b.test'))?.state === 'up');
  });

  it('loses nothing when the schedule is lost (Redis flushed): the outbox is the truth', async () => {
    const a = peers['a.test'] as Peer;
    a.up = false;
    const before = a.events().length;
    await enqueue('a.test', 255, 20);
    await until(async () => ((await repo.destination('a.test'))?.failures ?? 0) >= 1);
    if (redis && redisInfo) {
      const raw = new Redis(redisInfo.url);
      const keys = await raw.keys(`{${redisInfo.prefix}bull}*`);
      // The queue has run jobs for this destination, so its keys exist: the flush is real.
      expect(keys.length).toBeGreaterThan(0);
      await raw.del(...keys);
      raw.disconnect();
    }
    a.up = true;
    clock.advance(3_600_000); // past any backoff: the sweep finds it due
    await until(() => a.events().length >= before + 20);
    expect(a.events().slice(before)).toEqual(Array.from({ length: 20 }, (_, i) => 255 + i));
  });

  it('reports rows that outlive their TTL instead of delivering them silently late', async () => {
    const b = peers['b.test'] as Peer;
    b.up = false;
    await enqueue('b.test', 1000, 3, 60_000);
    await until(async () => ((await repo.destination('b.test'))?.failures ?? 0) >= 1);
    clock.advance(120_000);
    await until(
      async () =>
        (await db('outbox').where({ destination: 'b.test' }).whereNotNull('expired_ts').count<{ count: number }[]>('* as count'))[0]
          ?.count === 3,
    );
    b.up = true;
    clock.advance(3_600_000);
    // A row queued behind the expired ones is delivered: had they been sent, they came first.
    await enqueue('b.test', 2000, 1);
    await until(() => b.events().includes(2000));
    expect(b.events()).not.toContain(1000);
    expect(b.events()).not.toContain(1002);
  });
});
