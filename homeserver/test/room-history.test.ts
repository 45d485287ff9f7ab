import { RoomsApi } from '@parley/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from './support/server.js';

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number;
}

async function pool<T>(count: number, concurrency: number, work: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array(count);
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) {
        const i = next++;
        out[i] = await work(i);
      }
    }),
  );
  return out;
}

describe('history: ordered, gap-free pagination, stable under concurrent writers', () => {
  const TOTAL = 2_000; // the 10,000-message walk is in scenario.test.ts
  let server: TestServer;
  let alice: RoomsApi;
  let bob: RoomsApi;
  let roomId: string;

  beforeAll(async () => {
    server = await startTestServer();
    const a = server.client();
    await a.register({ username: 'alice', password: 'alice password' });
    const b = server.client();
    await b.register({ username: 'bob', password: 'bob password' });
    alice = new RoomsApi(a);
    bob = new RoomsApi(b);
    ({ room_id: roomId } = await alice.create({ visibility: 'public', name: 'Big room' }));
    await bob.join(roomId);
  });
  afterAll(() => server?.close());

  it(`sends ${TOTAL} messages and pages back through all of them, in order, each once`, async () => {
    const latencies = await pool(TOTAL, 8, async (i) => {
      const t0 = performance.now();
      await (i % 2 === 0 ? alice : bob).sendText(roomId, `message ${i}`);
      return performance.now() - t0;
    });
    latencies.sort((x, y) => x - y);
    process.stdout.write(
      `send latency over ${TOTAL} sends (8 in flight): p50 ${percentile(latencies, 50).toFixed(1)} ms, p95 ${percentile(latencies, 95).toFixed(1)} ms, p99 ${percentile(latencies, 99).toFixed(1)} ms\n`,
    );

    const seen: number[] = [];
    const pageTimes: number[] = [];
    let from: string | undefined;
    let lastSeq = Number.POSITIVE_INFINITY;
    let pages = 0;
    while (true) {
      const t0 = performance.now();
      const page = await bob.messages(roomId, { limit: 100, ...(from ? { from } : {}) });
      pageTimes.push(performance.now() - t0);
      pages += 1;
      for (const ev of page.chunk) {
        expect(ev.seq as number).toBeLessThan(lastSeq);
        lastSeq = ev.seq as number;
        const m = /^message (\d+)$/.exec(String(ev.content.body ?? ''));
        if (m) seen.push(Number(m[1]));
      }
      if (!page.end) break;
      from = page.end;
    }
    pageTimes.sort((x, y) => x - y);
    process.stdout.write(
      `history page (100 events) latency over ${pages} pages: p50 ${percentile(pageTimes, 50).toFixed(1)} ms, p95 ${percentile(pageTimes, 95).toFixed(1)} ms\n`,
    );
    expect(seen).toHaveLength(TOTAL);
    expect(new Set(seen).size).toBe(TOTAL);
    expect(lastSeq).toBe(1);
  }, 300_000);

  it('backward pages from a token are unaffected by messages sent meanwhile; forward paging sees every new one once', async () => {
    const head = await bob.messages(roomId, { limit: 50 });
    const headSeq = head.chunk[0]?.seq as number;
    let writes = 0;
    const writer = (async () => {
      for (; writes < 150; writes++) await alice.sendText(roomId, `concurrent ${writes}`);
    })();
    // Backwards from the head token while the writer appends.
    const backwards: number[] = [];
    let from = head.end;
    for (let i = 0; i < 20 && from; i++) {
      const page = await bob.messages(roomId, { from, limit: 50 });
      backwards.push(...page.chunk.map((e) => e.seq as number));
      from = page.end;
    }
    expect(backwards.every((s) => s < headSeq - 49)).toBe(true);
    expect(new Set(backwards).size).toBe(backwards.length);
    // Forwards from the head: keep paging until the writer is done and the log is drained.
    const forward: string[] = [];
    let fwd: string | undefined = `s${headSeq + 1}`;
    let done = false;
    writer.then(() => {
      done = true;
    });
    while (true) {
      const page = await bob.messages(roomId, { from: fwd, dir: 'f', limit: 40 });
      forward.push(...page.chunk.map((e) => String(e.content.body)));
      const last = page.chunk.at(-1)?.seq;
      if (page.end) fwd = page.end;
      else if (last !== undefined)
        fwd = `s${last + 1}`; // caught up with the log's end; continue after it
      else if (done) {
        const tail = await bob.messages(roomId, { from: fwd, dir: 'f', limit: 1000 });
        forward.push(...tail.chunk.map((e) => String(e.content.body)));
        break;
      }
    }
    await writer;
    expect(forward).toEqual(Array.from({ length: 150 }, (_, i) => `concurrent ${i}`));
  }, 120_000);

  it('refuses bad pagination parameters with 400', async () => {
    for (const qs of ['from=garbage', 'dir=x', 'limit=0', 'limit=100000', 'limit=abc', 'from=s99999999999']) {
      const res = await fetch(`${server.url}/api/v1/rooms/${encodeURIComponent(roomId)}/messages?${qs}`, {
        headers: {
          authorization: `Bearer ${(bob as unknown as { client: { session: { access_token: string } } }).client.session.access_token}`,
        },
      });
      expect(res.status, qs).toBe(400);
    }
  });
});
