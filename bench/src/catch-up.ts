import { onFailure } from '@parley/federation/delivery';
import type { RoomsApi } from '@parley/sdk';
import pg from 'pg';
import { pool, register } from './clients.js';
import { type BenchServer, benchRedis, startFederation } from './server.js';

export interface CatchUpOptions {
  /** Messages sent in the room while its participant server is down. */
  events: number;
  /** Sends in flight on the host while it queues them. */
  concurrency: number;
  /** How long to wait, from the participant's /health answering, for all of them. */
  capS: number;
}

/**
 * The host's backoff for the participant, once it is "long enough": more than 5 minutes when
 * the participant returns (the margin covers the seconds between setting it and the return).
 */
const BACKOFF_OVER_MS = 5.5 * 60_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Event IDs of the room's bench messages (`c|<i>|`), oldest first, paging back from the end. */
async function bodiesInOrder(rooms: RoomsApi, roomId: string): Promise<string[]> {
  const ids: string[] = [];
  let from: string | undefined;
  for (let pages = 0; pages < 10_000; pages++) {
    const page = await rooms.messages(roomId, { dir: 'b', limit: 100, ...(from ? { from } : {}) });
    for (const ev of page.chunk) if (ev.type === 'room.message' && String(ev.content.body).startsWith('c|')) ids.push(ev.event_id);
    if (!page.end || page.chunk.length === 0) break;
    from = page.end;
  }
  return ids.reverse();
}

/**
 * bench/README.md catch-up: B hosts a room, A takes part; A goes down while B's users send
 * `events` messages, so they queue in B's outbox for A, and B's backoff for A has grown past 5
 * minutes. Then A comes back: how long from its /health answering until A has every one of
 * them, in B's order.
 *
 * The outage's length is simulated: the bench writes B's delivery state for A as the real
 * schedule (`@parley/federation/delivery`) leaves it after failing for longer than that, instead
 * of waiting ten minutes. Nothing else is: the queue, the return and the delivery are real.
 */
export async function catchUp(o: CatchUpOptions): Promise<Record<string, unknown>> {
  const redis = await benchRedis();
  const [a, b] = (await startFederation(['a', 'b'], { redis })) as [BenchServer, BenchServer];
  const db = new pg.Client({ connectionString: b.databaseUrl ?? '' });
  try {
    if (!b.databaseUrl) throw new Error('catch-up needs the local Postgres (it sets the host’s backoff in its database)');
    await db.connect();
    const host = await register(b.url, 'host');
    const away = await register(a.url, 'away');
    const { room_id: roomId } = await host.rooms.create({ visibility: 'public', name: 'catch-up' });
    await away.rooms.join(roomId);

    await a.halt();
    const downAt = performance.now();
    const sendStart = performance.now();
    let sendFailures = 0;
    await pool(o.events, o.concurrency, async (i) => {
      try {
        await host.rooms.sendText(roomId, `c|${i}|`);
      } catch {
        sendFailures++;
      }
    });
    const sendS = (performance.now() - sendStart) / 1000;

    // B has tried A and failed by now (every send woke its delivery); make the backoff what
    // the schedule gives after failing for longer than 5 minutes.
    const destination = a.serverName;
    // Replayed on a virtual clock from the first failure (t = 0), each try failing at its
    // scheduled time, then shifted so that the last failure is now.
    let t = 0;
    let simulated = onFailure({ kind: 'up' }, t, Math.random);
    while (simulated.kind !== 'up' && simulated.nextTryTs - t <= BACKOFF_OVER_MS) {
      t = simulated.nextTryTs;
      simulated = onFailure(simulated, t, Math.random);
    }
    if (simulated.kind === 'up') throw new Error('catch-up: the schedule never backs off');
    const shift = Date.now() - t;
    const state = { ...simulated, nextTryTs: simulated.nextTryTs + shift, sinceTs: simulated.sinceTs + shift };
    const since = state.sinceTs;
    const setState = () =>
      db.query(
        `INSERT INTO destinations (name, state, failures, next_try_ts, since_ts) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (name) DO UPDATE SET state = $2, failures = $3, next_try_ts = $4, since_ts = $5`,
        [destination, state.kind, state.failures, state.nextTryTs, since],
      );
    // A drain of B's that was failing right then could overwrite it with its own (shorter) backoff.
    for (let i = 0; i < 20; i++) {
      await setState();
      await sleep(1000);
      const row = (await db.query('SELECT next_try_ts FROM destinations WHERE name = $1', [destination])).rows[0];
      if (Number(row?.next_try_ts) === state.nextTryTs) break;
    }
    const queued = Number(
      (
        await db.query('SELECT count(*)::int AS n FROM outbox WHERE destination = $1 AND delivered_ts IS NULL AND expired_ts IS NULL', [
          destination,
        ])
      ).rows[0]?.n,
    );
    const expected = await bodiesInOrder(host.rooms, roomId);
    const last = expected[expected.length - 1];

    b.resetPeak();
    const cpuBefore = b.usage().cpu_s;
    const downS = (performance.now() - downAt) / 1000;
    const resumeStart = performance.now();
    const returnedAt = Date.now();
    const healthyAt = await a.resume();
    a.resetPeak();
    let deliveredAt = Number.NaN;
    while (performance.now() - healthyAt < o.capS * 1000) {
      const page = await away.rooms.messages(roomId, { dir: 'b', limit: 1 }).catch(() => null);
      if (page?.chunk[0]?.event_id === last) {
        deliveredAt = performance.now();
        break;
      }
      await sleep(50);
    }
    const usageA = a.usage();
    const usageB = b.usage();
    const got = await bodiesInOrder(away.rooms, roomId);
    const wanted = new Set(expected);
    const gotSet = new Set(got);
    const missing = expected.filter((id) => !gotSet.has(id)).length;
    const firstOutOfOrder = got.findIndex((id, i) => id !== expected[i]);
    const afterState = (await db.query('SELECT state FROM destinations WHERE name = $1', [destination])).rows[0]?.state;
    return {
      scenario: 'catch-up',
      delivery: redis ? 'bullmq' : 'poller',
      events: o.events,
      send_failures: sendFailures,
      send_s: Math.round(sendS * 10) / 10,
      queued_outbox_rows: queued,
      host_backoff: {
        failures: state.failures,
        next_try_in_s_at_return: Math.round((state.nextTryTs - returnedAt) / 1000),
        simulated_down_s: Math.round((Date.now() - since) / 1000),
      },
      real_down_s: Math.round(downS * 10) / 10,
      start_to_health_s: Math.round((healthyAt - resumeStart) / 100) / 10,
      health_to_all_delivered_s: Number.isNaN(deliveredAt) ? null : Math.round((deliveredAt - healthyAt) / 10) / 100,
      delivered: got.filter((id) => wanted.has(id)).length,
      missing,
      in_order: firstOutOfOrder === -1 && got.length === expected.length,
      ...(firstOutOfOrder === -1 ? {} : { first_out_of_order: firstOutOfOrder }),
      host_destination_state_after: afterState ?? null,
      servers: {
        A: { peak_rss_kb: usageA.peak_rss_kb, cpu_s: usageA.cpu_s },
        B: { peak_rss_kb: usageB.peak_rss_kb, cpu_s_during_catch_up: Math.round((usageB.cpu_s - cpuBefore) * 100) / 100 },
      },
      ...(Number.isNaN(deliveredAt) ? { error: `not all delivered within ${o.capS} s of /health` } : {}),
    };
  } finally {
    await db.end().catch(() => undefined);
    await Promise.all([a.stop(), b.stop()]);
  }
}
