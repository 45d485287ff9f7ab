import Router from '@koa/router';
import type { Health } from '@parley/schemas';
import { pendingMigrations } from '../db/database.js';
import type { AppContext, AppState } from '../http/context.js';
import type { Metrics } from '../metrics.js';
import type { Services } from '../services/index.js';
import { VERSION } from '../version.js';

const CHECK_TIMEOUT_MS = 2_000;

async function timed<T>(work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${CHECK_TIMEOUT_MS} ms`)), CHECK_TIMEOUT_MS);
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function runCheck(work: () => Promise<string | undefined>): Promise<{ ok: boolean; detail?: string }> {
  try {
    const detail = await timed(work());
    return detail === undefined ? { ok: true } : { ok: false, detail };
  } catch (err) {
    return { ok: false, detail: (err as Error).message };
  }
}

export function opsRoutes(s: Services, metrics: Metrics): Router<AppState> {
  const router = new Router<AppState>();

  // GET /health — 200 when the database answers and migrations are current, else 503.
  router.get('/health', async (ctx: AppContext) => {
    const checks: Health['checks'] = {
      database: await runCheck(async () => {
        await s.db.raw('select 1');
        return undefined;
      }),
      migrations: await runCheck(async () => {
        const pending = await pendingMigrations(s.db);
        return pending.length === 0 ? undefined : `pending: ${pending.join(', ')}`;
      }),
    };
    const redis = s.redis;
    if (redis) {
      checks.redis = await runCheck(async () => ((await redis.ping()) === 'PONG' ? undefined : 'unexpected PING answer'));
    }
    const ok = Object.values(checks).every((c) => c.ok);
    const body: Health = { status: ok ? 'ok' : 'unavailable', server_name: s.config.server_name, version: VERSION, checks };
    ctx.status = ok ? 200 : 503;
    ctx.body = body;
  });

  // GET /metrics — Prometheus text format.
  router.get('/metrics', async (ctx: AppContext) => {
    ctx.type = metrics.registry.contentType;
    ctx.body = await metrics.registry.metrics();
  });

  return router;
}
