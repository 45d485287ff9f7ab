import { afterAll, describe, expect, it } from 'vitest';
import type { Config, DeepPartial } from '../src/config.js';
import { bucketStep } from '../src/services/rate-limit.js';
import { createTestRedis, type TestRedis } from './support/redis.js';
import { ManualClock, startTestServer, type TestServer } from './support/server.js';

const limits: DeepPartial<Config> = {
  rate_limits: {
    enabled: true,
    register_per_ip: { burst: 3, per_minute: 1 },
    login_per_ip: { burst: 100, per_minute: 100 },
    login_per_account: { burst: 2, per_minute: 1 },
  },
};

async function login(server: TestServer, username: string) {
  return fetch(`${server.url}/api/v1/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username, password: 'definitely wrong' }),
  });
}

describe('token bucket arithmetic', () => {
  it.each([
    // [tokens before, ms elapsed, burst, per_minute, allowed, retry ms]
    [undefined, 0, 2, 60, true, 0],
    [0, 0, 2, 60, false, 1000],
    [0, 500, 2, 60, false, 500],
    [0, 1000, 2, 60, true, 0],
    [0.5, 0, 1, 1, false, 30_000],
    [1, 10 ** 9, 5, 1, true, 0],
  ] as const)('tokens=%s elapsed=%s burst=%s rate=%s/min → allowed %s, retry %s', (tokens, elapsed, burst, perMinute, allowed, retry) => {
    const state = tokens === undefined ? undefined : { tokens, updated: 0 };
    const { decision, state: next } = bucketStep(state, { burst, per_minute: perMinute }, elapsed);
    expect(decision).toEqual({ allowed, retryAfterMs: retry });
    expect(next.tokens).toBeLessThanOrEqual(burst);
  });
});

describe.each([
  ['in memory', false],
  ['in Redis', true],
])('rate limits %s', (_name, useRedis) => {
  const servers: TestServer[] = [];
  let redis: TestRedis | undefined;
  afterAll(async () => {
    for (const s of servers) await s.close();
    await redis?.cleanup();
  });

  async function start(clock: ManualClock): Promise<TestServer> {
    if (useRedis) redis ??= await createTestRedis();
    const overrides: DeepPartial<Config> = useRedis ? { ...limits, redis: { url: redis?.url, key_prefix: redis?.prefix } } : limits;
    const server = await startTestServer(overrides, clock);
    servers.push(server);
    return server;
  }

  it('answers 429 with Retry-After per account, and refills with time', async () => {
    const clock = new ManualClock();
    const server = await start(clock);
    expect((await login(server, 'target')).status).toBe(401);
    expect((await login(server, 'target')).status).toBe(401);
    const limited = await login(server, 'target');
    expect(limited.status).toBe(429);
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    const body = (await limited.json()) as any;
    expect(body.error.code).toBe('PARLEY_RATE_LIMITED');
    expect(body.error.retry_after_ms).toBeGreaterThan(0);
    // Another account is not affected; the same account recovers after the refill time.
    expect((await login(server, 'someone-else')).status).toBe(401);
    clock.advance(body.error.retry_after_ms);
    expect((await login(server, 'target')).status).toBe(401);
  });

  it('limits registrations per IP', async () => {
    const clock = new ManualClock();
    const server = await start(clock);
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) {
      const res = await fetch(`${server.url}/api/v1/auth/register`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ username: `flood${i}`, password: 'flood password' }),
      });
      statuses.push(res.status);
    }
    expect(statuses).toEqual([201, 201, 201, 429, 429]);
  });

  if (useRedis) {
    it('shares buckets between processes of one server through Redis', async () => {
      const clock = new ManualClock();
      redis ??= await createTestRedis();
      const prefix = `${redis.prefix}shared:`;
      const a = await startTestServer({ ...limits, redis: { url: redis.url, key_prefix: prefix } }, clock);
      const b = await startTestServer({ ...limits, redis: { url: redis.url, key_prefix: prefix } }, clock);
      servers.push(a, b);
      expect((await login(a, 'shared')).status).toBe(401);
      expect((await login(b, 'shared')).status).toBe(401);
      expect((await login(a, 'shared')).status).toBe(429);
      expect((await login(b, 'shared')).status).toBe(429);
    });
  }
});
