import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config, DeepPartial } from '../src/config.js';
import { until } from './support/net.js';
import { ManualClock, startTestServer, type TestServer } from './support/server.js';
import { openStream } from './support/stream-client.js';

// Issue 10: HTTP-level findings.
describe('security: client IP behind a trusted proxy', () => {
  const servers: TestServer[] = [];
  afterAll(async () => {
    for (const s of servers) await s.close();
  });

  async function start(http: DeepPartial<Config['http']>): Promise<TestServer> {
    const server = await startTestServer({
      http,
      rate_limits: { enabled: true, register_per_ip: { burst: 2, per_minute: 0.001 } },
    });
    servers.push(server);
    return server;
  }

  async function registerStatuses(server: TestServer, forwarded: (i: number) => string): Promise<number[]> {
    const out: number[] = [];
    for (let i = 0; i < 4; i++) {
      const res = await fetch(`${server.url}/api/v1/auth/register`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-forwarded-for': forwarded(i) },
        body: JSON.stringify({ username: `spoof${i}`, password: 'spoof password' }),
      });
      out.push(res.status);
    }
    return out;
  }

  it('security: L3 a spoofed leftmost X-Forwarded-For does not escape the per-IP limit', async () => {
    const server = await start({ trust_proxy: true });
    // The client sends "X-Forwarded-For: <anything>"; the proxy appends the real address.
    expect(await registerStatuses(server, (i) => `192.0.2.${i}, 198.51.100.7`)).toEqual([201, 201, 429, 429]);
  });

  it('security: L3 trusted_proxy_hops picks the address the outermost trusted proxy saw', async () => {
    const server = await start({ trust_proxy: true, trusted_proxy_hops: 2 });
    // client-forged, real client (seen by proxy 1), proxy 1 (seen by proxy 2)
    expect(await registerStatuses(server, (i) => `192.0.2.${i}, 198.51.100.9, 10.0.0.2`)).toEqual([201, 201, 429, 429]);
    // A different real client has its own bucket.
    const res = await fetch(`${server.url}/api/v1/auth/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-forwarded-for': '198.51.100.10, 10.0.0.2' },
      body: JSON.stringify({ username: 'other', password: 'other password' }),
    });
    expect(res.status).toBe(201);
  });

  it('security: L3 sweep — a stream connection takes the address the trusted proxy appended, not the forged one', async () => {
    // The WebSocket upgrade never reaches Koa: it recorded the socket's peer (the proxy) as the
    // device's last-seen address, whatever client was behind it.
    const server = await start({ trust_proxy: true });
    const res = await fetch(`${server.url}/api/v1/auth/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-forwarded-for': '198.51.100.7' },
      body: JSON.stringify({ username: 'streamer', password: 'streamer password' }),
    });
    expect(res.status).toBe(201);
    const { access_token: token, device_id: deviceId } = (await res.json()) as { access_token: string; device_id: string };
    const lastSeenIp = async () => (await server.services.db('devices').where({ device_id: deviceId }).first())?.last_seen_ip ?? null;
    expect(await lastSeenIp()).toBeNull();
    const s = openStream(server.url, token, undefined, { 'x-forwarded-for': '192.0.2.66, 198.51.100.7' });
    await s.ready;
    await until(async () => (await lastSeenIp()) !== null);
    s.close();
    expect(await lastSeenIp()).toBe('198.51.100.7');
  });
});

describe('security: refresh tokens', () => {
  let server: TestServer;
  const clock = new ManualClock();
  const DAY = 86_400_000;

  async function post(path: string, body: unknown, token?: string): Promise<{ status: number; body: any }> {
    const res = await fetch(`${server.url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify(body),
    });
    return { status: res.status, body: await res.json() };
  }

  beforeAll(async () => {
    server = await startTestServer({}, clock);
    expect((await post('/api/v1/auth/register', { username: 'rita', password: 'rita password' })).status).toBe(201);
  });
  afterAll(() => server?.close());

  it('security: L11 a refresh token lives 30 days from its last use (sliding), not 90', async () => {
    let { refresh_token: token } = (await post('/api/v1/auth/login', { username: 'rita', password: 'rita password' })).body;
    for (let i = 0; i < 3; i++) {
      clock.advance(29 * DAY); // used within its life: a fresh 30 days each time
      const res = await post('/api/v1/auth/refresh', { refresh_token: token });
      expect(res.status).toBe(200);
      token = res.body.refresh_token;
    }
    clock.advance(31 * DAY);
    const stale = await post('/api/v1/auth/refresh', { refresh_token: token });
    expect(stale.status).toBe(401);
    expect(stale.body.error.message).toMatch(/expired/);
  });

  it('security: L11 a refresh token is useless once its device is deleted', async () => {
    const phone = (await post('/api/v1/auth/login', { username: 'rita', password: 'rita password' })).body;
    const laptop = (await post('/api/v1/auth/login', { username: 'rita', password: 'rita password' })).body;
    const res = await fetch(`${server.url}/api/v1/devices/${phone.device_id}`, {
      method: 'DELETE',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${laptop.access_token}` },
      body: JSON.stringify({ password: 'rita password' }),
    });
    expect(res.status).toBe(200);
    expect((await post('/api/v1/auth/refresh', { refresh_token: phone.refresh_token })).status).toBe(401);
    expect((await post('/api/v1/auth/refresh', { refresh_token: laptop.refresh_token })).status).toBe(200);
  });
});
