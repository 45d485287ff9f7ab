import { ParleyApiError, ParleyClient } from '@parley/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminQuery } from './support/postgres.js';
import { ManualClock, startTestServer, type TestServer } from './support/server.js';

async function post(server: TestServer, path: string, body: unknown, token?: string): Promise<{ status: number; body: any }> {
  const res = await fetch(`${server.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

async function get(server: TestServer, path: string, token: string): Promise<{ status: number; body: any }> {
  const res = await fetch(`${server.url}${path}`, { headers: { authorization: `Bearer ${token}` } });
  return { status: res.status, body: await res.json() };
}

describe('accounts, sessions and token rotation', () => {
  const clock = new ManualClock();
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({}, clock);
  });
  afterAll(() => server?.close());

  it('registers, answers whoami, and stores only hashes of tokens and an Argon2id hash of the password', async () => {
    const reg = await post(server, '/api/v1/auth/register', {
      username: 'alice',
      password: 'correct horse battery',
      device_name: 'laptop',
    });
    expect(reg.status).toBe(201);
    expect(reg.body).toMatchObject({ user_id: '@alice:hs1.test', expires_in_ms: 15 * 60_000 });
    expect(reg.body.device_id).toMatch(/^[A-Z]{10}$/);
    expect(reg.body.access_token).toMatch(/^pat_/);
    expect(reg.body.refresh_token).toMatch(/^prt_/);

    const who = await get(server, '/api/v1/account/whoami', reg.body.access_token);
    expect(who).toEqual({ status: 200, body: { user_id: '@alice:hs1.test', device_id: reg.body.device_id, is_admin: false } });

    const users = await adminQuery(server.database.name, 'select password_hash from users where localpart = $1', ['alice']);
    expect(users.rows[0].password_hash).toMatch(/^\$argon2id\$/);
    const dump = await adminQuery(server.database.name, "select string_agg(encode(secret_hash, 'hex'), ',') as h from access_tokens");
    const secret = reg.body.access_token.split('_').slice(2).join('_');
    expect(dump.rows[0].h).not.toContain(Buffer.from(secret).toString('hex'));
    expect(JSON.stringify(dump.rows)).not.toContain(secret);
  });

  it('refuses a taken username with 409 naming the field', async () => {
    const again = await post(server, '/api/v1/auth/register', { username: 'alice', password: 'another password' });
    expect(again.status).toBe(409);
    expect(again.body.error).toMatchObject({ code: 'PARLEY_USER_IN_USE', field: 'username' });
  });

  it('logs in by localpart or full user ID and refuses wrong passwords and unknown users alike', async () => {
    const byLocal = await post(server, '/api/v1/auth/login', { username: 'alice', password: 'correct horse battery' });
    const byId = await post(server, '/api/v1/auth/login', { username: '@alice:hs1.test', password: 'correct horse battery' });
    expect(byLocal.status).toBe(200);
    expect(byId.status).toBe(200);
    expect(byLocal.body.device_id).not.toBe(byId.body.device_id);
    const wrong = await post(server, '/api/v1/auth/login', { username: 'alice', password: 'wrong password' });
    const unknown = await post(server, '/api/v1/auth/login', { username: 'nobody', password: 'wrong password' });
    const otherServer = await post(server, '/api/v1/auth/login', { username: '@alice:elsewhere.test', password: 'correct horse battery' });
    for (const r of [wrong, unknown, otherServer]) {
      expect(r.status).toBe(401);
      expect(r.body.error.code).toBe('PARLEY_INVALID_CREDENTIALS');
    }
  });

  it('rotates refresh tokens, kills the old access token, and signs the device out on refresh-token reuse', async () => {
    const login = await post(server, '/api/v1/auth/login', { username: 'alice', password: 'correct horse battery' });
    const first = login.body;
    const rotated = await post(server, '/api/v1/auth/refresh', { refresh_token: first.refresh_token });
    expect(rotated.status).toBe(200);
    expect(rotated.body.refresh_token).not.toBe(first.refresh_token);
    expect((await get(server, '/api/v1/account/whoami', first.access_token)).status).toBe(401);
    expect((await get(server, '/api/v1/account/whoami', rotated.body.access_token)).body.device_id).toBe(first.device_id);

    // An attacker replays the first refresh token: the whole device is revoked.
    const replay = await post(server, '/api/v1/auth/refresh', { refresh_token: first.refresh_token });
    expect(replay.status).toBe(401);
    expect(replay.body.error.message).toMatch(/already used/);
    expect((await get(server, '/api/v1/account/whoami', rotated.body.access_token)).body.error.code).toBe('PARLEY_UNKNOWN_TOKEN');
    expect((await post(server, '/api/v1/auth/refresh', { refresh_token: rotated.body.refresh_token })).status).toBe(401);
  });

  it('expires access tokens with time, and the sdk refreshes transparently', async () => {
    const client = new ParleyClient({ baseUrl: server.url, now: () => clock.now() });
    await client.login({ username: 'alice', password: 'correct horse battery' });
    const before = client.session?.access_token;
    clock.advance(16 * 60_000);
    const raw = await get(server, '/api/v1/account/whoami', before as string);
    expect(raw.status).toBe(401);
    expect(raw.body.error.code).toBe('PARLEY_TOKEN_EXPIRED');
    expect((await client.whoami()).user_id).toBe('@alice:hs1.test');
    expect(client.session?.access_token).not.toBe(before);
  });

  it('shares one refresh between concurrent sdk calls (no self-inflicted reuse detection)', async () => {
    const client = new ParleyClient({ baseUrl: server.url, now: () => clock.now() });
    await client.login({ username: 'alice', password: 'correct horse battery' });
    clock.advance(20 * 60_000);
    const results = await Promise.all(Array.from({ length: 8 }, () => client.whoami()));
    expect(new Set(results.map((r) => r.device_id)).size).toBe(1);
    expect((await client.whoami()).user_id).toBe('@alice:hs1.test');
  });

  it('logout revokes the device at once; logout/all revokes every device', async () => {
    const a = await post(server, '/api/v1/auth/login', { username: 'alice', password: 'correct horse battery' });
    const b = await post(server, '/api/v1/auth/login', { username: 'alice', password: 'correct horse battery' });
    expect((await post(server, '/api/v1/auth/logout', {}, a.body.access_token)).status).toBe(200);
    expect((await get(server, '/api/v1/account/whoami', a.body.access_token)).status).toBe(401);
    expect((await post(server, '/api/v1/auth/refresh', { refresh_token: a.body.refresh_token })).status).toBe(401);
    expect((await get(server, '/api/v1/account/whoami', b.body.access_token)).status).toBe(200);

    const c = await post(server, '/api/v1/auth/login', { username: 'alice', password: 'correct horse battery' });
    expect((await post(server, '/api/v1/auth/logout/all', {}, c.body.access_token)).status).toBe(200);
    for (const t of [b.body.access_token, c.body.access_token]) {
      expect((await get(server, '/api/v1/account/whoami', t)).status).toBe(401);
    }
    const devices = await adminQuery(server.database.name, "select count(*)::int as n from devices where user_id = '@alice:hs1.test'");
    expect(devices.rows[0].n).toBe(0);
  });

  it('changing the password signs out other devices, keeps this one, and checks the old password', async () => {
    const client = new ParleyClient({ baseUrl: server.url, now: () => clock.now() });
    await client.register({ username: 'bob', password: 'first password' });
    const other = new ParleyClient({ baseUrl: server.url, now: () => clock.now() });
    await other.login({ username: 'bob', password: 'first password' });

    await expect(client.changePassword({ old_password: 'not it', new_password: 'second password' })).rejects.toMatchObject({
      status: 403,
    });
    await client.changePassword({ old_password: 'first password', new_password: 'second password' });
    expect((await client.whoami()).user_id).toBe('@bob:hs1.test');
    await expect(other.whoami()).rejects.toBeInstanceOf(ParleyApiError);
    expect(other.session).toBeNull();
    await expect(other.login({ username: 'bob', password: 'first password' })).rejects.toMatchObject({
      code: 'PARLEY_INVALID_CREDENTIALS',
    });
    await other.login({ username: 'bob', password: 'second password' });
  });

  it('re-login with a known device_id keeps the device and replaces its tokens', async () => {
    const first = await post(server, '/api/v1/auth/login', { username: 'bob', password: 'second password', device_id: 'PHONE1' });
    expect(first.body.device_id).toBe('PHONE1');
    const second = await post(server, '/api/v1/auth/login', { username: 'bob', password: 'second password', device_id: 'PHONE1' });
    expect(second.body.device_id).toBe('PHONE1');
    expect((await get(server, '/api/v1/account/whoami', first.body.access_token)).status).toBe(401);
    expect((await get(server, '/api/v1/account/whoami', second.body.access_token)).status).toBe(200);
  });
});
