import { connectStream, pool, register, sendVia, streamSender, type TextSender } from './clients.js';
import { startServer } from './server.js';
import { percentiles } from './stats.js';

export interface LocalLatencyOptions {
  members: number;
  rate: number;
  seconds: number;
}

/**
 * bench/README.md local-latency: one server, one room, `members` receivers on streams, a sender
 * at `rate` msg/s for `seconds`; send → stream latency over every message × receiver,
 * measured on one process clock.
 */
export async function localLatency(o: LocalLatencyOptions): Promise<Record<string, unknown>> {
  const via = sendVia();
  const server = await startServer('local');
  try {
    const sender = await register(server.url, 'sender');
    const { room_id: roomId } = await sender.rooms.create({ visibility: 'public', name: 'bench' });
    const seen: Array<Map<number, number>> = [];
    let duplicates = 0;
    const sockets: Array<{ close(): void }> = [];
    await pool(o.members, 10, async (i) => {
      const m = await register(server.url, `member${i}`);
      await m.rooms.join(roomId);
      const mine = new Map<number, number>();
      seen[i] = mine;
      sockets.push(
        await connectStream(server.url, m.token, (f) => {
          if (f.kind !== 'event') return;
          const body = f.data.event.content.body;
          if (typeof body !== 'string' || !body.startsWith('lat|')) return;
          const [, seq, sentAt] = body.split('|');
          if (mine.has(Number(seq))) duplicates++;
          else mine.set(Number(seq), performance.now() - Number(sentAt));
        }),
      );
    });
    // The sender has no stream of its own otherwise: over the stream, it opens one to send on.
    let transport: TextSender = sender.rooms;
    if (via === 'stream') {
      const socket = await connectStream(server.url, sender.token);
      sockets.push(socket);
      transport = streamSender(socket);
    }
    await new Promise((r) => setTimeout(r, 2000));

    const total = o.rate * o.seconds;
    const interval = 1000 / o.rate;
    const t0 = performance.now();
    const inflight: Array<Promise<unknown>> = [];
    let failed = 0;
    for (let i = 0; i < total; i++) {
      const due = t0 + i * interval;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      // Exactly 200 bytes: phase, sequence, send time, padding.
      const head = `lat|${i}|${performance.now().toFixed(3)}|`;
      const body = head.padEnd(200, '.');
      inflight.push(transport.sendText(roomId, body).catch(() => failed++));
    }
    await Promise.all(inflight);
    const drainUntil = performance.now() + 15_000;
    while (performance.now() < drainUntil && seen.some((m) => m.size < total)) await new Promise((r) => setTimeout(r, 50));
    const latencies = seen.flatMap((m) => [...m.values()]);
    const usage = server.usage();
    for (const s of sockets) s.close();
    return {
      scenario: 'local-latency',
      members: o.members,
      rate_msg_s: o.rate,
      seconds: o.seconds,
      send_via: via,
      sent: total - failed,
      send_failures: failed,
      delivered: latencies.length,
      missing: total * o.members - latencies.length,
      duplicates,
      latency_ms: percentiles(latencies),
      server: { peak_rss_kb: usage.peak_rss_kb, cpu_s: usage.cpu_s },
    };
  } finally {
    await server.stop();
  }
}
