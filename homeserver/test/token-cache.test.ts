import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AccessTokenLookup } from '../src/repositories/tokens.js';
import { AccessTokenCache } from '../src/services/token-cache.js';
import { ManualClock, startTestServer, type TestServer } from './support/server.js';

type Reply = { status: number; body: any };

async function call(server: TestServer, method: string, path: string, token?: string, body?: unknown): Promise<Reply> {
  const res = await fetch(`${server.url}${path}`, {
    method,
    headers: {
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

const row = (id: string, userId: string): AccessTokenLookup => ({
  id,
  device_pk: 1,
  secret_hash: Buffer.alloc(32),
  created_ts: 0,
  expires_ts: Number.MAX_SAFE_INTEGER,
  user_id: userId,
  device_id: 'DEV',
  is_admin: false,
  deactivated: false,
  last_seen_ts: 0,
});

describe('AccessTokenCache', () => {
  it('holds at most maxEntries, dropping the least recently used, and forgets after the TTL', () => {
    const clock = new ManualClock(1_000);
    const cache = new AccessTokenCache(clock, { maxEntries: 2, ttlMs: 30_000 });
    cache.put(row('a', '@u:x'), cache.epoch());
    cache.put(row('b', '@u:x'), cache.epoch());
    expect(cache.get('a')?.id).toBe('a'); // a is now the most recent
    cache.put(row('c', '@v:x'), cache.epoch());
    expect(cache.size).toBe(2);
    expect(cache.get('b')).toBeUndefined();
    expect(cache.get('c')?.id).toBe('c');
    clock.advance(30_000);
    expect(cache.get('a')).toBeUndefined();
  });

  it('a row read before a revocation is not stored after it; a revocation drops only that user', () => {
    const clock = new ManualClock(1_000);
    const cache = new AccessTokenCache(clock);
    cache.put(row('other', '@v:x'), cache.epoch());
    const before = cache.epoch();
    cache.onControl({ type: 'revoke_device', user_id: '@u:x', device_id: 'DEV' });
    cache.put(row('raced', '@u:x'), before);
    expect(cache.get('raced')).toBeUndefined();
    expect(cache.get('other')?.id).toBe('other');
    cache.onControl({ type: 'auth_changed', user_id: '@v:x' });
    expect(cache.get('other')).toBeUndefined();
  });

  it('requests for one token while it is read share the read, unless a revocation came between', async () => {
    const cache = new AccessTokenCache(new ManualClock());
    const reads: Array<(r: AccessTokenLookup) => void> = [];
    const read = () => new Promise<AccessTokenLookup | undefined>((resolve) => reads.push(resolve));
    const first = cache.load('a', read);
    const second = cache.load('a', read);
    expect(second).toBe(first);
    expect(reads).toHaveLength(1);
    cache.onControl({ type: 'revoke_user', user_id: '@u:x' });
    const third = cache.load('a', read);
    expect(third).not.toBe(first);
    expect(reads).toHaveLength(2);
    reads[0]?.(row('a', '@u:x'));
    reads[1]?.(row('a', '@u:x'));
    await Promise.all([first.row, third.row]);
    // Settled reads are forgotten: the next miss reads again.
    cache.load('a', read);
    expect(reads).toHaveLength(3);
  });

  it('is bypassed while revocations from other processes may be missed', () => {
    let live = true;
    const cache = new AccessTokenCache(new ManualClock(), undefined, () => live);
    cache.put(row('a', '@u:x'), cache.epoch());
    live = false;
    expect(cache.get('a')).toBeUndefined();
    cache.put(row('b', '@u:x'), cache.epoch());
    live = true;
    expect(cache.get('a')?.id).toBe('a');
    expect(cache.get('b')).toBeUndefined();
  });
});

describe('cached sign-ins on one process: every revocation is refused on the very next request', () => {
  const clock = new ManualClock();
  let server: TestServer;
  let n = 0;
  beforeAll(async () => {
    server = await startTestServer({}, clock);
  });
  afterAll(() => server?.close());

  async function signUp(): Promise<{ userId: string; token: string; refresh: string; password: string; username: string }> {
    const username = `cache${++n}`;
    const password = `${username} password`;
    const reg = await call(server, 'POST', '/api/v1/auth/register', undefined, { username, password });
    expect(reg.status).toBe(201);
    return { userId: reg.body.user_id, token: reg.body.access_token, refresh: reg.body.refresh_token, password, username };
  }

  async function login(username: string, password: string): Promise<{ token: string; deviceId: string }> {
    const res = await call(server, 'POST', '/api/v1/auth/login', undefined, { username, password });
    expect(res.status).toBe(200);
    return { token: res.body.access_token, deviceId: res.body.device_id };
  }

  /** Two requests: the second one is answered from the cache. */
  async function warm(token: string): Promise<void> {
    expect((await call(server, 'GET', '/api/v1/account/whoami', token)).status).toBe(200);
    expect((await call(server, 'GET', '/api/v1/account/whoami', token)).status).toBe(200);
  }

  const whoami = (token: string) => call(server, 'GET', '/api/v1/account/whoami', token);

  it('a cached token is answered without the database, for at most the TTL', async () => {
    const u = await signUp();
    await warm(u.token);
    // As if the row vanished with no revocation message: the cache answers until its TTL.
    await server.services.db('access_tokens').where('id', u.token.split('_')[1]).delete();
    expect((await whoami(u.token)).status).toBe(200);
    clock.advance(30_000);
    expect((await whoami(u.token)).body.error.code).toBe('PARLEY_UNKNOWN_TOKEN');
  });

  it('a wrong secret for a cached token ID is refused', async () => {
    const u = await signUp();
    await warm(u.token);
    const forged = `${u.token.slice(0, u.token.lastIndexOf('_') + 1)}${'A'.repeat(43)}`;
    expect((await whoami(forged)).status).toBe(401);
  });

  it('logout, logout of all devices, device delete, password change', async () => {
    const a = await signUp();
    await warm(a.token);
    expect((await call(server, 'POST', '/api/v1/auth/logout', a.token)).status).toBeLessThan(300);
    expect((await whoami(a.token)).status).toBe(401);

    const b = await signUp();
    const other = await login(b.username, b.password);
    await warm(other.token);
    await warm(b.token);
    expect((await call(server, 'DELETE', `/api/v1/devices/${other.deviceId}`, b.token)).status).toBeLessThan(300);
    expect((await whoami(other.token)).status).toBe(401);

    const third = await login(b.username, b.password);
    await warm(third.token);
    const changed = await call(server, 'POST', '/api/v1/account/password', b.token, {
      old_password: b.password,
      new_password: 'a brand new password',
    });
    expect(changed.status).toBeLessThan(300);
    expect((await whoami(third.token)).status).toBe(401);
    expect((await whoami(b.token)).status).toBe(200);

    expect((await call(server, 'POST', '/api/v1/auth/logout/all', b.token)).status).toBeLessThan(300);
    expect((await whoami(b.token)).status).toBe(401);
  });

  it('refresh rotation and re-login on a known device replace the cached token', async () => {
    const u = await signUp();
    await warm(u.token);
    const rotated = await call(server, 'POST', '/api/v1/auth/refresh', undefined, { refresh_token: u.refresh });
    expect(rotated.status).toBe(200);
    expect((await whoami(u.token)).status).toBe(401);
    expect((await whoami(rotated.body.access_token)).status).toBe(200);

    const first = await login(u.username, u.password);
    await warm(first.token);
    const again = await call(server, 'POST', '/api/v1/auth/login', undefined, {
      username: u.username,
      password: u.password,
      device_id: first.deviceId,
    });
    expect(again.status).toBe(200);
    expect((await whoami(first.token)).status).toBe(401);
  });

  it('admin actions: deactivation refuses at once, an admin flag taken away is gone at once', async () => {
    const root = await signUp();
    const u = await signUp();
    await warm(u.token);
    await server.services.admin.users.setAdmin(u.userId, true, root.userId);
    expect((await whoami(u.token)).body.is_admin).toBe(true);
    await server.services.admin.users.setAdmin(u.userId, false, root.userId);
    expect((await whoami(u.token)).body.is_admin).toBe(false);
    await server.services.admin.users.deactivate(u.userId, root.userId, false);
    expect((await whoami(u.token)).status).toBe(401);
  });
});
