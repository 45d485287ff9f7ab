import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminQuery } from './support/postgres.js';
import { createTestRedis } from './support/redis.js';
import { startTestServer, type TestServer } from './support/server.js';

describe('health, metrics and request IDs', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(() => server?.close());

  it('is healthy when the database answers and migrations are current', async () => {
    const res = await fetch(`${server.url}/health`);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({
      status: 'ok',
      server_name: 'hs1.test',
      checks: { database: { ok: true }, migrations: { ok: true } },
    });
  });

  it('exposes Prometheus metrics by route template, never by raw path', async () => {
    await fetch(`${server.url}/api/v1/profile/${encodeURIComponent('@secret-name:hs1.test')}`);
    const text = await (await fetch(`${server.url}/metrics`)).text();
    expect(text).toMatch(/parley_http_requests_total\{method="GET",route="\/health",status="200"\} \d+/);
    expect(text).toMatch(/parley_http_request_duration_seconds_bucket\{le="0.005",method="GET",route="\/health"\}/);
    expect(text).toMatch(/parley_db_pool_connections\{state="used"\} \d+/);
    expect(text).toContain('parley_process_resident_memory_bytes');
    expect(text).toContain('route="/api/v1/profile/:userId"');
    expect(text).not.toContain('secret-name');
  });

  it('echoes a sane X-Request-Id and replaces an unsafe one', async () => {
    const mine = await fetch(`${server.url}/health`, { headers: { 'x-request-id': 'abc-12345678' } });
    expect(mine.headers.get('x-request-id')).toBe('abc-12345678');
    const bad = await fetch(`${server.url}/health`, { headers: { 'x-request-id': 'x\u00ff'.repeat(3) } });
    expect(bad.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('answers CORS preflights for the API (bearer tokens, any origin)', async () => {
    const res = await fetch(`${server.url}/api/v1/account/whoami`, {
      method: 'OPTIONS',
      headers: { origin: 'https://app.example', 'access-control-request-method': 'GET', 'access-control-request-headers': 'authorization' },
    });
    expect(res.status).toBe(204);
    expect(res.headers.get('access-control-allow-origin')).toBe('*');
    expect(res.headers.get('access-control-allow-headers')).toMatch(/Authorization/);
  });

  it('reports 503 when a migration is not applied', async () => {
    await adminQuery(server.database.name, "delete from parley_migrations where name = '20261121220000_accounts'");
    const res = await fetch(`${server.url}/health`);
    expect(res.status).toBe(503);
    const body = (await res.json()) as any;
    expect(body.status).toBe('unavailable');
    expect(body.checks.migrations).toMatchObject({ ok: false, detail: expect.stringContaining('20261121220000_accounts') });
    await adminQuery(
      server.database.name,
      "insert into parley_migrations (name, batch, migration_time) values ('20261121220000_accounts', 1, now())",
    );
    expect((await fetch(`${server.url}/health`)).status).toBe(200);
  });

  it('reports 503 (not a crash) while the database refuses connections, and recovers', async () => {
    const name = server.database.name;
    await adminQuery(null, `ALTER DATABASE ${name} WITH ALLOW_CONNECTIONS false`);
    await adminQuery(null, 'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1', [name]);
    try {
      const res = await fetch(`${server.url}/health`);
      expect(res.status).toBe(503);
      expect(((await res.json()) as any).checks.database.ok).toBe(false);
      const api = await fetch(`${server.url}/api/v1/auth/login`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ username: 'x', password: 'y' }),
      });
      expect(api.status).toBe(503);
      expect(((await api.json()) as any).error.code).toBe('PARLEY_UNAVAILABLE');
    } finally {
      await adminQuery(null, `ALTER DATABASE ${name} WITH ALLOW_CONNECTIONS true`);
    }
    await expect.poll(async () => (await fetch(`${server.url}/health`)).status, { timeout: 10_000 }).toBe(200);
  });
});

describe('health with Redis', () => {
  it('includes a Redis check when REDIS_URL is configured', async () => {
    const redis = await createTestRedis();
    const server = await startTestServer({ redis: { url: redis.url, key_prefix: redis.prefix } });
    try {
      const body = (await (await fetch(`${server.url}/health`)).json()) as any;
      expect(body.checks.redis).toEqual({ ok: true });
    } finally {
      await server.close();
      await redis.cleanup();
    }
  });
});

describe('graceful shutdown', () => {
  it('finishes in-flight requests, then refuses new connections', async () => {
    const server = await startTestServer();
    // The request is in flight for sure once the server has answered `100 Continue` (Node
    // does so as it hands the request to the app); its body is sent only after stop() began.
    const body = JSON.stringify({ username: 'latecomer', password: 'latecomer password' });
    const req = http.request(`${server.url}/api/v1/auth/register`, {
      method: 'POST',
      agent: false,
      headers: {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(body),
        expect: '100-continue',
        connection: 'close',
      },
    });
    const response = new Promise<http.IncomingMessage>((resolve, reject) => {
      req.on('response', resolve);
      req.on('error', reject);
    });
    const accepted = new Promise<void>((resolve) => req.on('continue', () => resolve()));
    req.flushHeaders();
    await accepted;
    const closing = server.close();
    req.end(body);
    const res = await response;
    res.resume();
    expect(res.statusCode).toBe(201);
    await closing;
    await expect(fetch(`${server.url}/health`)).rejects.toThrow();
  });
});
