import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { type BenchServer, benchRedis, PRODUCTION_ENV, PRODUCTION_NODE_FLAGS, redisPrefix, startServer } from './server.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const mb = (kb: number) => Math.round(kb / 102.4) / 10;

function status(pid: number): Record<'rss' | 'anon' | 'file', number> {
  const text = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(text)?.[1] ?? 0);
  return { rss: mb(kb('VmRSS')), anon: mb(kb('RssAnon')), file: mb(kb('RssFile') + kb('RssShmem')) };
}

/** The server's own view, from the process metrics on /metrics (prom-client's defaults). */
async function heap(server: BenchServer): Promise<Record<string, number>> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  const value = (name: string) => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text)?.[1] ?? Number.NaN);
  const m = (bytes: number) => Math.round(bytes / 104857.6) / 10;
  return {
    heap_used_mb: m(value('parley_nodejs_heap_size_used_bytes')),
    heap_total_mb: m(value('parley_nodejs_heap_size_total_bytes')),
    external_mb: m(value('parley_nodejs_external_memory_bytes')),
  };
}

/** RSS of a bare `node` with the same flags, doing nothing: the floor under any server. */
async function bareNode(): Promise<number> {
  const child = spawn(process.execPath, [...PRODUCTION_NODE_FLAGS, '-e', 'setInterval(() => {}, 1000)'], {
    stdio: 'ignore',
    env: { ...PRODUCTION_ENV, ...process.env },
  });
  try {
    await sleep(1500);
    return status(child.pid as number).rss;
  } finally {
    child.kill('SIGKILL');
  }
}

/**
 * bench/README.md idle-rss: one `parley serve` (the bundle, production flags, federation
 * listener on) restarted once on its database and data directory, no client ever connected,
 * `earlyS` and `settleS` after /health first answered (V8 gives back the heap start-up grew
 * only once the process has been idle for a while: the first is a server just started, the
 * second one that has been idle). Measured without Redis (the in-process poller) and, when
 * Redis answers, with it.
 */
export async function idleRss(o: { earlyS: number; settleS: number }): Promise<Record<string, unknown>> {
  const measure = async (redis: string | null) => {
    const server = await startServer('idle', {
      federation: { port: 0, staticServers: {} },
      ...(redis ? { redis: { url: redis, prefix: redisPrefix('idle') } } : {}),
    });
    try {
      // Measured after a restart on the same data directory and database: a first start also
      // makes the TLS certificate and signing key and applies every migration.
      await server.halt();
      await server.resume();
      const t0 = Date.now();
      await sleep(o.earlyS * 1000);
      const early = status(server.pid);
      await sleep(o.settleS * 1000 - (Date.now() - t0));
      const s = status(server.pid);
      return {
        [`rss_mb_at_${o.earlyS}s`]: early.rss,
        [`rss_anon_mb_at_${o.earlyS}s`]: early.anon,
        settled_after_s: o.settleS,
        rss_mb: s.rss,
        rss_anon_mb: s.anon,
        rss_file_mb: s.file,
        ...(await heap(server)),
      };
    } finally {
      await server.stop();
    }
  };
  const redis = await benchRedis();
  return {
    scenario: 'idle-rss',
    node_flags: PRODUCTION_NODE_FLAGS.join(' '),
    node_env: PRODUCTION_ENV,
    poller: await measure(null),
    ...(redis ? { bullmq: await measure(redis) } : {}),
    bare_node_rss_mb: await bareNode(),
  };
}
