import { bootstrapSim } from './bootstrap-sim.js';
import { catchUp } from './catch-up.js';
import { e2eCrypto } from './e2e-crypto.js';
import { fedFanout } from './fed-fanout.js';
import { idleConns } from './idle-conns.js';
import { idleRss } from './idle-rss.js';
import { joinLarge } from './join-large.js';
import { localLatency } from './local-latency.js';
import { relayBench } from './relay.js';
import { scaleOut } from './scale-out.js';
import { verifyBench } from './verify.js';

/**
 * `pnpm bench [scenario …] [--smoke]`: runs the named scenarios (all when none is named) on
 * loopback and prints one JSON object per scenario. `--smoke` (or PARLEY_BENCH_SMOKE=1) runs
 * tiny sizes, for CI: benchmarks never assert a time.
 */
const args = process.argv.slice(2);
const smoke = args.includes('--smoke') || process.env.PARLEY_BENCH_SMOKE === '1';
const scenarios: Record<string, () => Promise<Record<string, unknown>>> = {
  'fed-fanout': () =>
    smoke
      ? fedFanout({ membersPerServer: 3, burst: 30, burstCapS: 30, rate: 20, seconds: 2, drainS: 15 })
      : fedFanout({ membersPerServer: 25, burst: 2000, burstCapS: 120, rate: 200, seconds: 10, drainS: 15 }),
  'local-latency': () =>
    smoke ? localLatency({ members: 5, rate: 50, seconds: 2 }) : localLatency({ members: 50, rate: 200, seconds: 10 }),
  'idle-rss': () => (smoke ? idleRss({ earlyS: 1, settleS: 2 }) : idleRss({ earlyS: 10, settleS: 60 })),
  'idle-conns': () => (smoke ? idleConns({ connections: 200, users: 5 }) : idleConns({ connections: 10_000, users: 100 })),
  'join-large': () => {
    // PARLEY_BENCH_JOIN_LARGE=<members>x<messages> runs another size (e.g. under a join cap).
    const size = /^(\d+)x(\d+)$/.exec(process.env.PARLEY_BENCH_JOIN_LARGE ?? '');
    const [members, messages] = size ? [Number(size[1]), Number(size[2])] : smoke ? [20, 20] : [10_000, 10_000];
    return joinLarge({ members, messages, concurrency: smoke ? 8 : 16, capS: smoke ? 60 : 600 });
  },
  verify: async () => (smoke ? verifyBench({ events: 200, seconds: 0.3 }) : verifyBench({ events: 2000, seconds: 3 })),
  'bootstrap-sim': () =>
    smoke
      ? bootstrapSim({ nodes: 50, announcing: 0.6, seeds: 3, maxRounds: 30, roundMs: 1_800_000 })
      : bootstrapSim({ nodes: 1000, announcing: 0.6, seeds: 5, maxRounds: 60, roundMs: 1_800_000 }),
  'catch-up': () => (smoke ? catchUp({ events: 200, concurrency: 8, capS: 60 }) : catchUp({ events: 10_000, concurrency: 16, capS: 300 })),
  relay: () =>
    smoke
      ? relayBench({ membersPerServer: 3, rate: 20, seconds: 2, drainS: 15 })
      : relayBench({ membersPerServer: 25, rate: 200, seconds: 10, drainS: 15 }),
  'scale-out': () => {
    // PARLEY_BENCH_SCALE_OUT=<senders>x<seconds> runs another size (e.g. a reduced run).
    const size = /^(\d+)x(\d+)$/.exec(process.env.PARLEY_BENCH_SCALE_OUT ?? '');
    const [senders, seconds] = size ? [Number(size[1]), Number(size[2])] : smoke ? [2, 2] : [32, 30];
    return scaleOut({ senders, seconds, readers: smoke ? 1 : 4, media: smoke ? 2 : 40 });
  },
  'e2e-crypto': () =>
    smoke ? e2eCrypto({ messages: 200, members: 20, commits: 2 }) : e2eCrypto({ messages: 5000, members: 500, commits: 5 }),
};

const names = args.filter((a) => !a.startsWith('--'));
const unknown = names.filter((n) => !(n in scenarios));
if (unknown.length > 0) {
  process.stderr.write(`unknown scenario(s): ${unknown.join(', ')}; known: ${Object.keys(scenarios).join(', ')}\n`);
  process.exit(2);
}
let failed = false;
for (const name of names.length > 0 ? names : Object.keys(scenarios)) {
  try {
    const started = performance.now();
    const result = await (scenarios[name] as () => Promise<Record<string, unknown>>)();
    if ('error' in result) failed = true;
    const scenarioS = Math.round((performance.now() - started) / 100) / 10;
    process.stdout.write(`${JSON.stringify({ ...result, smoke, scenario_s: scenarioS })}\n`);
  } catch (err) {
    failed = true;
    process.stdout.write(`${JSON.stringify({ scenario: name, error: (err as Error).message })}\n`);
  }
}
process.exit(failed ? 1 : 0);
