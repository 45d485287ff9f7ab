import type WebSocket from 'ws';
import { connectStream, pool, register } from './clients.js';
import { startServer } from './server.js';

/** bench/README.md idle-conns: RSS of one server holding `connections` idle, identified streams. */
export async function idleConns(o: { connections: number; users: number }): Promise<Record<string, unknown>> {
  const server = await startServer('idle');
  const sockets: WebSocket[] = [];
  try {
    const baseline = server.usage();
    const users: Array<{ token: string }> = [];
    for (let i = 0; i < o.users; i++) users.push(await register(server.url, `idle${i}`));
    const t0 = performance.now();
    await pool(o.connections, 100, async (i) => {
      sockets.push(await connectStream(server.url, (users[i % users.length] as { token: string }).token));
    });
    const connectS = (performance.now() - t0) / 1000;
    await new Promise((r) => setTimeout(r, 3000));
    const usage = server.usage();
    return {
      scenario: 'idle-conns',
      connections: sockets.length,
      rss_mb: Math.round(usage.rss_kb / 102.4) / 10,
      peak_rss_mb: Math.round(usage.peak_rss_kb / 102.4) / 10,
      baseline_rss_mb: Math.round(baseline.rss_kb / 102.4) / 10,
      kb_per_connection: Math.round(((usage.rss_kb - baseline.rss_kb) / Math.max(1, sockets.length)) * 10) / 10,
      connect_s: Math.round(connectS * 100) / 100,
    };
  } finally {
    for (const s of sockets) s.terminate();
    await server.stop();
  }
}
