import net from 'node:net';
import pg from 'pg';
import type WebSocket from 'ws';
import { connectStream, type Member, pool, register } from './clients.js';
import { type BenchServer, benchRedis, freePort, redisPrefix, startServer } from './server.js';
import { percentiles } from './stats.js';

export interface RelayBenchOptions {
  /** Receivers on each of A (the room's host and the sender's server) and B. */
  membersPerServer: number;
  rate: number;
  seconds: number;
  drainS: number;
}

const BODY_BYTES = 200;
const QUIET_MS = 2000;
const SETTLE_CAP_MS = 120_000;
const SWITCH_CAP_MS = 90_000;
const WARMUP_S = 10;
const WARMUP_CAP_MS = 90_000;

type Mode = 'direct' | 'relayed' | 'direct_again';
const TAGS: Record<Mode, 'd' | 'r' | 'e'> = { direct: 'd', relayed: 'r', direct_again: 'e' };
const HEAL_CAP_MS = 90_000;

interface Receiver {
  side: 'A' | 'B';
  latency: Record<Mode, Float64Array>;
  count: Record<Mode, number>;
  duplicates: Record<Mode, number>;
  sawWarmup: boolean;
  warmups: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitUntil(cond: () => boolean, capMs: number): Promise<boolean> {
  const end = performance.now() + capMs;
  while (!cond()) {
    if (performance.now() > end) return false;
    await sleep(20);
  }
  return true;
}

/** `<tag>|<seq>|<send time>|` padded to exactly 200 bytes (tag: d direct, r relayed, w warm-up). */
function body(tag: 'd' | 'r' | 'e' | 'w', seq: number): string {
  const text = `${tag}|${seq}|${performance.now().toFixed(3)}|`.padEnd(BODY_BYTES, '.');
  if (Buffer.byteLength(text) !== BODY_BYTES) throw new Error('relay: body is not 200 bytes');
  return text;
}

/** A TCP port in front of B's federation listener: open it forwards, closed nothing listens. */
class Gate {
  private server: net.Server | null = null;
  private readonly sockets = new Set<net.Socket>();
  constructor(
    readonly port: number,
    readonly target: number,
  ) {}
  async open(): Promise<void> {
    const server = net.createServer((inbound) => {
      const outbound = net.connect(this.target, '127.0.0.1');
      for (const s of [inbound, outbound]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => {
          inbound.destroy();
          outbound.destroy();
        });
      }
      inbound.pipe(outbound).pipe(inbound);
    });
    await new Promise<void>((resolve) => server.listen(this.port, '127.0.0.1', () => resolve()));
    this.server = server;
  }
  async close(): Promise<void> {
    const server = this.server;
    this.server = null;
    for (const s of this.sockets) s.destroy();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

/**
 * bench/README.md relay: fed-fanout's phase 2 (a steady rate for some seconds, then a drain
 * window) run three times in one run on the same servers and room: with A reaching B directly,
 * then with A's path to B closed so A's transactions reach B through the anchor relay R
 * (store-and-forward), then direct again once the path is open and A has noticed.
 * Deliveries/s and send → stream latency, by receivers on A and on B.
 */
export async function relayBench(o: RelayBenchOptions): Promise<Record<string, unknown>> {
  const redis = await benchRedis();
  const names = ['a', 'b', 'r'] as const;
  const ports = Object.fromEntries(await Promise.all(names.map(async (n) => [n, await freePort()] as const))) as Record<
    (typeof names)[number],
    number
  >;
  const gate = new Gate(await freePort(), ports.b);
  const statics = Object.fromEntries(names.map((n) => [`${n}.bench`, `127.0.0.1:${ports[n]}`]));
  const start = (n: (typeof names)[number], staticServers: Record<string, string>, config: Record<string, unknown>) =>
    startServer(n, {
      federation: { port: ports[n], staticServers },
      ...(redis ? { redis: { url: redis, prefix: redisPrefix(n) } } : {}),
      config,
    });
  await gate.open();
  const started = await Promise.allSettled([
    // A names R as its anchor relay and reaches B only through the gate.
    start(
      'a',
      { ...statics, 'b.bench': `127.0.0.1:${gate.port}` },
      { relay: { anchors: ['r.bench'], fallback_after_ms: 2000, fallback_poll_ms: 200, fallback_direct_retry_max_ms: 30_000 } },
    ),
    start('b', statics, {}),
    start('r', statics, { relay: { enabled: true } }),
  ]);
  const servers = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  const sockets: WebSocket[] = [];
  try {
    const failed = started.find((s) => s.status === 'rejected');
    if (failed) throw (failed as PromiseRejectedResult).reason;
    const [a, b, r] = servers as [BenchServer, BenchServer, BenchServer];
    const setupStart = performance.now();
    const specs = [
      ...Array.from({ length: o.membersPerServer }, (_, i) => ({ server: a, name: `a${i}`, side: 'A' as const })),
      ...Array.from({ length: o.membersPerServer }, (_, i) => ({ server: b, name: `b${i}`, side: 'B' as const })),
      { server: a, name: 'sender', side: null },
    ];
    const members = new Array<Member>(specs.length);
    await pool(specs.length, 8, async (i) => {
      const s = specs[i]!;
      members[i] = await register(s.server.url, s.name);
    });
    const { room_id: roomId } = await members[0]!.rooms.create({ visibility: 'public', name: 'relay bench' });
    const expected = new Set(specs.map((s) => `@${s.name}:${s.server.serverName}`));
    const total = o.rate * o.seconds;
    const phase: Record<Mode, { firstSend: number; lastDelivery: number }> = {
      direct: { firstSend: 0, lastDelivery: 0 },
      relayed: { firstSend: 0, lastDelivery: 0 },
      direct_again: { firstSend: 0, lastDelivery: 0 },
    };
    const joins: Array<Set<string>> = specs.map(() => new Set());
    const receivers: Receiver[] = [];
    const setup = async (i: number) => {
      const s = specs[i]!;
      const m = members[i]!;
      if (i > 0) await m.rooms.join(roomId);
      const rec: Receiver | null = s.side
        ? {
            side: s.side,
            latency: {
              direct: new Float64Array(total).fill(Number.NaN),
              relayed: new Float64Array(total).fill(Number.NaN),
              direct_again: new Float64Array(total).fill(Number.NaN),
            },
            count: { direct: 0, relayed: 0, direct_again: 0 },
            duplicates: { direct: 0, relayed: 0, direct_again: 0 },
            sawWarmup: false,
            warmups: 0,
          }
        : null;
      if (rec) receivers.push(rec);
      const ws = await connectStream(s.server.url, m.token, (f) => {
        const now = performance.now();
        if (f.kind !== 'event' || f.data.event.room_id !== roomId) return;
        const ev = f.data.event;
        if (ev.type === 'room.member') {
          if (ev.content.membership === 'join' && typeof ev.state_key === 'string') joins[i]!.add(ev.state_key);
          return;
        }
        const text = ev.content.body;
        if (!rec || ev.type !== 'room.message' || typeof text !== 'string') return;
        const [tag, seqText, sentText] = text.split('|', 3);
        if (tag === 'w') {
          rec.sawWarmup = true;
          rec.warmups++;
          return;
        }
        const mode = (Object.keys(TAGS) as Mode[]).find((m) => TAGS[m] === tag) ?? null;
        const seq = Number(seqText);
        if (!mode || !Number.isInteger(seq) || seq < 0 || seq >= total) return;
        if (!Number.isNaN(rec.latency[mode][seq]!)) {
          rec.duplicates[mode]++;
          return;
        }
        rec.latency[mode][seq] = now - Number(sentText);
        rec.count[mode]++;
        if (now > phase[mode].lastDelivery) phase[mode].lastDelivery = now;
      });
      sockets.push(ws);
      for (let attempt = 0; ; attempt++) {
        try {
          for (const mm of await m.rooms.members(roomId)) if (mm.membership === 'join') joins[i]!.add(mm.user_id);
          break;
        } catch (err) {
          if (attempt >= 300) throw err;
          await sleep(100);
        }
      }
    };
    // B's first join alone (concurrent first joins of one room from one server race).
    const firstB = o.membersPerServer;
    await setup(0);
    await setup(firstB);
    const rest = specs.map((_, i) => i).filter((i) => i !== 0 && i !== firstB);
    await pool(rest.length, 5, (k) => setup(rest[k]!));
    if (!(await waitUntil(() => joins.every((j) => [...expected].every((u) => j.has(u))), SETTLE_CAP_MS)))
      throw new Error(`relay: joins did not settle within ${SETTLE_CAP_MS / 1000} s`);
    const setupS = (performance.now() - setupStart) / 1000;
    await sleep(QUIET_MS);

    const sender = members.at(-1)!;
    let sendFailures = 0;
    const send = (tag: 'd' | 'r' | 'e' | 'w', seq: number) =>
      sender.rooms.sendText(roomId, body(tag, seq)).then(
        () => undefined,
        () => {
          sendFailures++;
        },
      );
    const run = async (mode: Mode) => {
      const cpu0 = servers.map((s) => s.usage().cpu_s);
      const failures0 = sendFailures;
      const inflight: Array<Promise<void>> = [];
      const interval = 1000 / o.rate;
      const t0 = performance.now();
      phase[mode].firstSend = t0;
      for (let i = 0; i < total; i++) {
        const wait = t0 + i * interval - performance.now();
        if (wait > 0) await sleep(wait);
        inflight.push(send(TAGS[mode], i));
      }
      const sentAt = performance.now();
      await Promise.race([Promise.all(inflight), sleep(o.drainS * 1000)]);
      await waitUntil(() => receivers.every((rc) => rc.count[mode] === total), o.drainS * 1000 - (performance.now() - sentAt));
      return report(mode, total, phase[mode], receivers, {
        send_failures: sendFailures - failures0,
        cpu_s: Object.fromEntries(servers.map((s, i) => [s.serverName, Math.round((s.usage().cpu_s - cpu0[i]!) * 100) / 100])),
      });
    };

    const warmupCount = o.rate * Math.min(WARMUP_S, 2 * o.seconds);
    // Warm-up at the same rate, not measured: a fresh process's first seconds (JIT, pools,
    // caches) would otherwise count against whichever mode runs first.
    for (let i = 0; i < warmupCount; i++) {
      void send('w', i);
      await sleep(1000 / o.rate);
    }
    // …until every receiver has all of it: the servers have caught up before anything is measured.
    await waitUntil(() => receivers.every((rc) => rc.warmups >= warmupCount), WARMUP_CAP_MS);
    await sleep(QUIET_MS);
    const direct = await run('direct');
    await sleep(QUIET_MS);
    // Close A's path to B, then warm up until B's receivers get messages through R.
    for (const rc of receivers) rc.sawWarmup = false;
    await gate.close();
    const closedAt = performance.now();
    let w = warmupCount;
    const bReceivers = receivers.filter((rc) => rc.side === 'B');
    while (!bReceivers.every((rc) => rc.sawWarmup) && performance.now() - closedAt < SWITCH_CAP_MS) {
      await send('w', w++);
      await sleep(200);
    }
    if (!bReceivers.every((rc) => rc.sawWarmup)) throw new Error(`relay: nothing reached B through R within ${SWITCH_CAP_MS / 1000} s`);
    const switchS = (performance.now() - closedAt) / 1000;
    await sleep(QUIET_MS);
    const relayed = await run('relayed');
    const carried = await relayCarried(r);
    // Open the path again: with traffic flowing, A goes back to direct at its next direct try
    // (within fallback_direct_retry_max_ms), which its database shows as B being up.
    await gate.open();
    const openedAt = performance.now();
    const probe = () => {
      void send('w', w++);
      return destinationUp(a, b.serverName);
    };
    if (!(await waitFor(probe, HEAL_CAP_MS))) throw new Error(`relay: A did not go back to direct within ${HEAL_CAP_MS / 1000} s`);
    const healS = (performance.now() - openedAt) / 1000;
    await sleep(QUIET_MS);
    const beforeAgain = await relayCarried(r);
    const directAgain = await run('direct_again');
    const carriedAfter = await relayCarried(r);
    return {
      scenario: 'relay',
      delivery: redis ? 'bullmq (Redis)' : 'in-process outbox poller',
      servers: { A: `${a.serverName} (room host, sender)`, B: b.serverName, R: `${r.serverName} (anchor relay)` },
      receivers: { A: o.membersPerServer, B: o.membersPerServer },
      body_bytes: BODY_BYTES,
      rate_msg_s: o.rate,
      seconds: o.seconds,
      drain_cap_s: o.drainS,
      setup_s: Math.round(setupS * 10) / 10,
      switch_to_relay_s: Math.round(switchS * 10) / 10,
      back_to_direct_s: Math.round(healS * 10) / 10,
      direct,
      relayed,
      direct_again: directAgain,
      relay_carried: carried,
      relay_carried_while_direct_again: beforeAgain && carriedAfter ? carriedAfter.transactions - beforeAgain.transactions : null,
    };
  } finally {
    for (const ws of sockets) ws.close();
    await gate.close();
    await Promise.all(servers.map((s) => s.stop()));
  }
}

async function waitFor(cond: () => Promise<boolean>, capMs: number): Promise<boolean> {
  const end = performance.now() + capMs;
  while (!(await cond())) {
    if (performance.now() > end) return false;
    await sleep(500);
  }
  return true;
}

/** Whether `server`'s delivery state says `destination` is up (a direct delivery succeeded). */
async function destinationUp(server: BenchServer, destination: string): Promise<boolean> {
  if (!server.databaseUrl) return true;
  const c = new pg.Client({ connectionString: server.databaseUrl });
  await c.connect();
  try {
    const { rows } = await c.query('select state from destinations where name = $1', [destination]);
    return (rows[0] as { state?: string } | undefined)?.state === 'up';
  } finally {
    await c.end();
  }
}

/** Transactions the relay delivered for others (store-and-forward), from its database. */
async function relayCarried(r: BenchServer): Promise<{ transactions: number; bytes: number; undelivered: number } | null> {
  if (!r.databaseUrl) return null;
  const c = new pg.Client({ connectionString: r.databaseUrl });
  await c.connect();
  try {
    const { rows } = await c.query(
      'select count(*)::int as transactions, coalesce(sum(bytes), 0)::bigint as bytes, count(*) filter (where delivered_ts is null)::int as undelivered from relay_held',
    );
    const row = rows[0] as { transactions: number; bytes: string; undelivered: number };
    return { transactions: row.transactions, bytes: Number(row.bytes), undelivered: row.undelivered };
  } finally {
    await c.end();
  }
}

function report(
  mode: Mode,
  total: number,
  phase: { firstSend: number; lastDelivery: number },
  receivers: Receiver[],
  extra: Record<string, unknown>,
): Record<string, unknown> {
  const all: number[] = [];
  const bySide: Record<'A' | 'B', number[]> = { A: [], B: [] };
  let duplicates = 0;
  for (const r of receivers) {
    duplicates += r.duplicates[mode];
    for (const v of r.latency[mode]) {
      if (Number.isNaN(v)) continue;
      all.push(v);
      bySide[r.side].push(v);
    }
  }
  const wall = phase.lastDelivery > 0 ? (phase.lastDelivery - phase.firstSend) / 1000 : 0;
  const onB = bySide.B.length;
  return {
    messages: total,
    delivered: all.length,
    missing: total * receivers.length - all.length,
    duplicates,
    wall_s_first_send_to_last_delivery: Math.round(wall * 1000) / 1000,
    deliveries_per_s: wall > 0 ? Math.round(all.length / wall) : 0,
    deliveries_per_s_on_B: wall > 0 ? Math.round(onB / wall) : 0,
    latency_ms: { ...percentiles(all), receivers_on_A: percentiles(bySide.A), receivers_on_B: percentiles(bySide.B) },
    ...extra,
  };
}
