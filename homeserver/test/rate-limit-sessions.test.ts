import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock, startTestServer, type TestServer } from './support/server.js';

/** The per-IP login and refresh limits and the password-change limit (issue 10 test audit). */
describe('rate limits on sessions', () => {
  let server: TestServer;
  const clock = new ManualClock();

  beforeAll(async () => {
    server = await startTestServer(
      {
        rate_limits: {
          enabled: true,
          register_per_ip: { burst: 100, per_minute: 100 },
          login_per_ip: { burst: 3, per_minute: 1 },
          login_per_account: { burst: 2, per_minute: 1 },
          refresh_per_ip: { burst: 2, per_minute: 1 },
        },
      },
      clock,
    );
  });
  afterAll(() => server?.close());

  function post(path: string, body: unknown, token?: string): Promise<Response> {
    return fetch(`${server.url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify(body),
    });
  }

  it('limits logins per IP, whatever account they name, and refills with time', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++)
      statuses.push((await post('/api/v1/auth/login', { username: `nobody${i}`, password: 'wrong password' })).status);
    expect(statuses).toEqual([401, 401, 401, 429]);
    clock.advance(60_000);
    expect((await post('/api/v1/auth/login', { username: 'nobody9', password: 'wrong password' })).status).toBe(401);
  });

  it('limits refreshes per IP', async () => {
    const token = `prt_${'0'.repeat(24)}_${'A'.repeat(43)}`;
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++) statuses.push((await post('/api/v1/auth/refresh', { refresh_token: token })).status);
    expect(statuses).toEqual([401, 401, 429]);
    const limited = await post('/api/v1/auth/refresh', { refresh_token: token });
    expect(((await limited.json()) as { error: { code: string } }).error.code).toBe('PARLEY_RATE_LIMITED');
  });

  it('limits password changes per account, sharing the login budget (guessing old_password is a login attempt)', async () => {
    const reg = await post('/api/v1/auth/register', { username: 'changer', password: 'changer password' });
    const { access_token } = (await reg.json()) as { access_token: string };
    const change = (old: string) => post('/api/v1/account/password', { old_password: old, new_password: 'another password' }, access_token);
    expect((await change('guess one')).status).toBe(403);
    expect((await change('guess two')).status).toBe(403);
    // The budget is spent: even the right password waits, and so does a login to the account.
    expect((await change('changer password')).status).toBe(429);
    clock.advance(60_000);
    expect((await post('/api/v1/auth/login', { username: 'changer', password: 'wrong password' })).status).toBe(401);
    expect((await change('changer password')).status).toBe(429);
  });
});
