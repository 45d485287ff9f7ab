import { RoomsApi } from '@parley/sdk';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callApi } from './support/api-call.js';
import { createTestRedis, type TestRedis } from './support/redis.js';
import { ManualClock, startTestServer, type TestServer } from './support/server.js';
import { openStream } from './support/stream-client.js';

// Issue 15: the admin API refuses non-admins and bad input, ends a deactivated account's
// sessions and streams at once, and writes every action to the audit log.
describe('admin API', () => {
  let server: TestServer;
  let adminToken: string;
  let userToken: string;
  let adminId: string;
  const clock = new ManualClock();

  const call = (method: string, path: string, token: string | null, body?: unknown) => callApi(server.url, method, path, token, body);
  const audit = async (action: string) =>
    ((await call('GET', `/api/v1/admin/audit?action=${action}`, adminToken)).body.entries as Array<Record<string, unknown>>) ?? [];

  beforeAll(async () => {
    server = await startTestServer({}, clock);
    const admin = server.client();
    const s = await admin.register({ username: 'root', password: 'root password' });
    adminId = s.user_id;
    await server.services.users.setAdmin(adminId, true);
    adminToken = s.access_token;
    const user = server.client();
    userToken = (await user.register({ username: 'plain', password: 'plain password' })).access_token;
  });
  afterAll(() => server?.close());

  const ENDPOINTS: Array<[string, string]> = [
    ['GET', '/api/v1/admin/users'],
    ['POST', '/api/v1/admin/users'],
    ['GET', '/api/v1/admin/users/@plain:hs1.test'],
    ['POST', '/api/v1/admin/users/@plain:hs1.test/deactivate'],
    ['POST', '/api/v1/admin/users/@plain:hs1.test/reactivate'],
    ['POST', '/api/v1/admin/users/@plain:hs1.test/password'],
    ['PUT', '/api/v1/admin/users/@plain:hs1.test/admin'],
    ['DELETE', '/api/v1/admin/users/@plain:hs1.test/sessions'],
    ['GET', '/api/v1/admin/registration-tokens'],
    ['POST', '/api/v1/admin/registration-tokens'],
    ['DELETE', '/api/v1/admin/registration-tokens/abcd'],
    ['GET', '/api/v1/admin/rooms'],
    ['GET', '/api/v1/admin/rooms/blocked'],
    ['GET', '/api/v1/admin/rooms/!x:hs1.test'],
    ['GET', '/api/v1/admin/rooms/!x:hs1.test/members'],
    ['GET', '/api/v1/admin/rooms/!x:hs1.test/state'],
    ['PUT', '/api/v1/admin/rooms/!x:hs1.test/block'],
    ['POST', '/api/v1/admin/rooms/!x:hs1.test/shutdown'],
    ['GET', '/api/v1/admin/reports'],
    ['GET', '/api/v1/admin/reports/1'],
    ['PUT', '/api/v1/admin/reports/1/assign'],
    ['POST', '/api/v1/admin/reports/1/resolve'],
    ['GET', '/api/v1/admin/media'],
    ['PUT', '/api/v1/admin/media/abc/quarantine'],
    ['DELETE', '/api/v1/admin/media/abc'],
    ['GET', '/api/v1/admin/federation/destinations'],
    ['POST', '/api/v1/admin/federation/destinations/b.test/retry'],
    ['GET', '/api/v1/admin/federation/policies'],
    ['POST', '/api/v1/admin/federation/policies'],
    ['DELETE', '/api/v1/admin/federation/policies/1'],
    ['POST', '/api/v1/admin/federation/policies/undo/sub:1'],
    ['POST', '/api/v1/admin/federation/policies/import'],
    ['GET', '/api/v1/admin/federation/policies/export'],
    ['POST', '/api/v1/admin/federation/subscriptions'],
    ['POST', '/api/v1/admin/federation/subscriptions/1/refresh'],
    ['DELETE', '/api/v1/admin/federation/subscriptions/1'],
    ['GET', '/api/v1/admin/dashboard'],
    ['GET', '/api/v1/admin/settings'],
    ['GET', '/api/v1/admin/audit'],
    ['GET', '/api/v1/admin/jobs'],
    ['GET', '/api/v1/admin/jobs/00000000-0000-0000-0000-000000000000'],
  ];

  it.each(ENDPOINTS)('%s %s refuses callers without a token (401) and non-admins (403)', async (method, path) => {
    const body = method === 'GET' || method === 'DELETE' ? undefined : {};
    expect((await call(method, path, null, body)).status).toBe(401);
    const asUser = await call(method, path, userToken, body);
    expect(asUser.status).toBe(403);
    expect(asUser.body.error.code).toBe('PARLEY_FORBIDDEN');
  });

  const BAD: Array<[string, string, unknown, string]> = [
    ['POST', '/api/v1/admin/users', { username: 'Bad Name!' }, 'username'],
    ['POST', '/api/v1/admin/users', { username: 'ok', password: 'short' }, 'password'],
    ['POST', '/api/v1/admin/users', { username: 'ok', extra: 1 }, 'extra'],
    ['GET', '/api/v1/admin/users/not-a-user', undefined, 'userId'],
    ['GET', '/api/v1/admin/users/@someone:elsewhere.test', undefined, 'userId'],
    ['POST', '/api/v1/admin/users/@plain:hs1.test/password', { password: 1 }, 'password'],
    ['PUT', '/api/v1/admin/users/@plain:hs1.test/admin', { admin: 'yes' }, 'admin'],
    ['POST', '/api/v1/admin/users/@plain:hs1.test/deactivate', { leave_rooms: 'no' }, 'leave_rooms'],
    ['GET', '/api/v1/admin/users?filter=everyone', undefined, 'filter'],
    ['GET', '/api/v1/admin/users?limit=0', undefined, 'limit'],
    ['POST', '/api/v1/admin/registration-tokens', { uses_allowed: -1 }, 'uses_allowed'],
    ['POST', '/api/v1/admin/registration-tokens', { expires_in_ms: 5 }, 'expires_in_ms'],
    ['GET', '/api/v1/admin/rooms/not-a-room', undefined, 'roomId'],
    ['PUT', '/api/v1/admin/rooms/!x:hs1.test/block', { blocked: 'yes' }, 'blocked'],
    ['POST', '/api/v1/admin/rooms/!x:hs1.test/shutdown', { delete: 'please' }, 'delete'],
    ['GET', '/api/v1/admin/reports?state=maybe', undefined, 'state'],
    ['GET', '/api/v1/admin/reports/abc', undefined, 'id'],
    ['PUT', '/api/v1/admin/reports/1/assign', { assignee: 'bob' }, 'assignee'],
    ['POST', '/api/v1/admin/reports/1/resolve', { resolution: '' }, 'resolution'],
    ['GET', '/api/v1/admin/media?order=random', undefined, 'order'],
    ['GET', '/api/v1/admin/media?uploader=nobody', undefined, 'uploader'],
    ['PUT', '/api/v1/admin/media/a%20b/quarantine', { quarantined: true }, 'mediaId'],
    ['PUT', '/api/v1/admin/media/abc/quarantine', { quarantined: 1 }, 'quarantined'],
    ['POST', '/api/v1/admin/federation/policies', { domain: 'not a domain', kind: 'block' }, 'domain'],
    ['POST', '/api/v1/admin/federation/policies', { domain: 'b.test', kind: 'mute' }, 'kind'],
    ['DELETE', '/api/v1/admin/federation/policies/x', undefined, 'id'],
    ['POST', '/api/v1/admin/federation/policies/undo/whatever', undefined, 'batch'],
    ['POST', '/api/v1/admin/federation/policies/import', { format: 'xml', data: 'a' }, 'format'],
    ['POST', '/api/v1/admin/federation/policies/import', { format: 'csv', data: 'ok.test\nnot a domain' }, 'data'],
    ['POST', '/api/v1/admin/federation/policies/import', { format: 'json', data: '{' }, 'data'],
    ['GET', '/api/v1/admin/federation/policies/export?format=xls', undefined, 'format'],
    ['POST', '/api/v1/admin/federation/subscriptions', { url: 'ftp://x', public_key: 'a'.repeat(43) }, 'url'],
    ['POST', '/api/v1/admin/federation/subscriptions', { url: 'https://lists.test/x.json', public_key: 'short' }, 'public_key'],
    ['GET', '/api/v1/admin/dashboard?days=0', undefined, 'days'],
    ['GET', '/api/v1/admin/audit?action=DROP%20TABLE', undefined, 'action'],
    ['GET', '/api/v1/admin/audit?since=yesterday', undefined, 'since'],
    ['GET', '/api/v1/admin/jobs/nope', undefined, 'id'],
  ];

  it.each(BAD)('%s %s with bad input is a 400 naming the field', async (method, path, body, field) => {
    const res = await call(method, path, adminToken, body);
    expect(res.status).toBe(400);
    expect(res.body.error.field).toBe(field);
  });

  it('deactivation ends the sessions and open streams of the account at once, and is audited', async () => {
    const spammer = server.client();
    const session = await spammer.register({ username: 'spammer', password: 'spammer password' });
    const room = await new RoomsApi(spammer).create({ name: 'spam', visibility: 'public' });
    const stream = openStream(server.url, session.access_token);
    await stream.ready;
    const res = await call('POST', `/api/v1/admin/users/${session.user_id}/deactivate`, adminToken, { reason: 'spam' });
    expect(res.status).toBe(200);
    // The stream closes as revoked, not at its next heartbeat.
    expect((await stream.closed).code).toBe(4003);
    expect((await call('GET', '/api/v1/account/whoami', session.access_token)).status).toBe(401);
    const login = await fetch(`${server.url}/api/v1/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'spammer', password: 'spammer password' }),
    });
    expect(login.status).toBe(403);
    // The account leaves its rooms as a job with progress.
    const jobId = res.body.job.id as string;
    await expect
      .poll(async () => (await call('GET', `/api/v1/admin/jobs/${jobId}`, adminToken)).body)
      .toMatchObject({ state: 'done', done: 1, total: 1 });
    expect(await server.services.roomRepo.membership(room.room_id, session.user_id)).toBe('leave');
    const [entry] = await audit('user.deactivate');
    expect(entry).toMatchObject({ actor: adminId, target: session.user_id, details: { reason: 'spam' } });
    expect(entry?.ip).toMatch(/127\.0\.0\.1/);
  });

  it('creates a user, resets the password (old sessions end), grants admin; each lands in the audit log', async () => {
    const created = await call('POST', '/api/v1/admin/users', adminToken, { username: 'newbie' });
    expect(created.status).toBe(201);
    expect(created.body.password).toMatch(/^.{16,}$/);
    const dup = await call('POST', '/api/v1/admin/users', adminToken, { username: 'newbie' });
    expect(dup.status).toBe(409);
    const c = server.client();
    const s = await c.login({ username: 'newbie', password: created.body.password });
    const reset = await call('POST', '/api/v1/admin/users/@newbie:hs1.test/password', adminToken, { password: 'brand new password' });
    expect(reset.status).toBe(200);
    expect((await call('GET', '/api/v1/account/whoami', s.access_token)).status).toBe(401);
    await server.client().login({ username: 'newbie', password: 'brand new password' });
    expect((await call('PUT', '/api/v1/admin/users/@newbie:hs1.test/admin', adminToken, { admin: true })).status).toBe(200);
    const found = await call('GET', '/api/v1/admin/users?q=newb&filter=admins', adminToken);
    expect(found.body.users.map((u: { user_id: string }) => u.user_id)).toEqual(['@newbie:hs1.test']);
    const details = await call('GET', '/api/v1/admin/users/@newbie:hs1.test', adminToken);
    expect(details.body.sessions).toHaveLength(1);
    expect((await audit('user.create'))[0]).toMatchObject({ target: '@newbie:hs1.test' });
    expect((await audit('user.reset_password'))[0]).toMatchObject({ target: '@newbie:hs1.test', details: { logout_devices: true } });
    expect((await audit('user.admin_grant'))[0]).toMatchObject({ target: '@newbie:hs1.test' });
    // An admin may not remove their own flag (a lock-out).
    expect((await call('PUT', `/api/v1/admin/users/${adminId}/admin`, adminToken, { admin: false })).status).toBe(400);
  });

  it('registration tokens: create, list, delete, audited without the secret', async () => {
    const made = await call('POST', '/api/v1/admin/registration-tokens', adminToken, { uses_allowed: 3 });
    expect(made.status).toBe(201);
    const token = made.body.token as string;
    expect(
      (await call('GET', '/api/v1/admin/registration-tokens', adminToken)).body.tokens.map((t: { token: string }) => t.token),
    ).toContain(token);
    expect((await call('DELETE', `/api/v1/admin/registration-tokens/${token}`, adminToken)).status).toBe(200);
    const entries = await audit('registration_token');
    expect(entries.map((e) => e.action)).toEqual(['registration_token.delete', 'registration_token.create']);
    expect(JSON.stringify(entries)).not.toContain(token);
  });

  it('reports: a user reports a message and a user; admins assign and resolve; figures follow', async () => {
    const alice = server.client();
    await alice.register({ username: 'alice', password: 'alice password' });
    const troll = server.client();
    const trollSession = await troll.register({ username: 'troll', password: 'troll password' });
    const room = await new RoomsApi(alice).create({ name: 'lobby', visibility: 'public' });
    await new RoomsApi(troll).join(room.room_id);
    const sent = await new RoomsApi(troll).send(room.room_id, 'room.message', { body: 'buy cheap pills' });
    const aliceToken = alice.session?.access_token as string;
    const r1 = await call('POST', `/api/v1/rooms/${room.room_id}/report/${sent.event_id}`, aliceToken, { reason: 'spam' });
    expect(r1.status).toBe(200);
    expect((await call('POST', `/api/v1/rooms/${room.room_id}/report/${sent.event_id}`, aliceToken, { reason: '' })).body.error.field).toBe(
      'reason',
    );
    // Someone outside the room cannot report (or read) its messages.
    expect((await call('POST', `/api/v1/rooms/${room.room_id}/report/${sent.event_id}`, userToken, { reason: 'x' })).status).toBe(403);
    const r2 = await call('POST', `/api/v1/users/${trollSession.user_id}/report`, aliceToken, { reason: 'harassment' });
    expect(r2.status).toBe(200);
    expect((await call('POST', '/api/v1/users/nobody/report', aliceToken, { reason: 'x' })).body.error.field).toBe('userId');

    const queue = await call('GET', '/api/v1/admin/reports', adminToken);
    expect(queue.body.reports).toHaveLength(2);
    expect(queue.body.reports[0]).toMatchObject({
      kind: 'event',
      target_user_id: trollSession.user_id,
      event_snapshot: { content: { body: 'buy cheap pills' } },
    });
    expect(queue.body.figures.open).toBe(2);
    const id = r1.body.report_id as number;
    expect((await call('PUT', `/api/v1/admin/reports/${id}/assign`, adminToken, { assignee: adminId })).body.assignee).toBe(adminId);
    expect((await call('PUT', `/api/v1/admin/reports/${id}/assign`, adminToken, { assignee: '@plain:hs1.test' })).status).toBe(400);
    const resolved = await call('POST', `/api/v1/admin/reports/${id}/resolve`, adminToken, { resolution: 'removed the spammer' });
    expect(resolved.body).toMatchObject({ state: 'resolved', resolved_by: adminId });
    expect((await call('POST', `/api/v1/admin/reports/${id}/resolve`, adminToken, { resolution: 'again' })).status).toBe(409);
    const after = await call('GET', '/api/v1/admin/reports', adminToken);
    expect(after.body.figures).toMatchObject({ open: 1, resolved: 1 });
    expect(after.body.figures.median_ms).toBeGreaterThanOrEqual(0);
    expect((await audit('report.'))[0]).toMatchObject({ action: 'report.resolve', target: String(id) });
  });

  it('rooms: search, members, state, block (joins refused), shut down with progress; audited', async () => {
    const owner = server.client();
    await owner.register({ username: 'owner', password: 'owner password' });
    const room = await new RoomsApi(owner).create({ name: 'Doomed room', visibility: 'public' });
    const found = await call('GET', '/api/v1/admin/rooms?q=doomed', adminToken);
    expect(found.body.rooms).toHaveLength(1);
    expect(found.body.rooms[0]).toMatchObject({ room_id: room.room_id, name: 'Doomed room', joined_members: 1, local_members: 1 });
    expect((await call('GET', `/api/v1/admin/rooms/${room.room_id}/members`, adminToken)).body.members).toHaveLength(1);
    expect((await call('GET', `/api/v1/admin/rooms/${room.room_id}/state`, adminToken)).body.state.length).toBeGreaterThan(2);
    const shut = await call('POST', `/api/v1/admin/rooms/${room.room_id}/shutdown`, adminToken, { reason: 'abuse' });
    expect(shut.status).toBe(202);
    await expect
      .poll(async () => (await call('GET', `/api/v1/admin/jobs/${shut.body.job.id}`, adminToken)).body)
      .toMatchObject({ state: 'done', done: 1, total: 1 });
    expect(await server.services.roomRepo.membership(room.room_id, owner.userId as string)).toBe('leave');
    // Blocked: nobody here may join again.
    const joinAgain = await call('POST', `/api/v1/rooms/${room.room_id}/join`, owner.session?.access_token as string, {});
    expect(joinAgain.status).toBe(403);
    expect((await call('PUT', `/api/v1/admin/rooms/${room.room_id}/block`, adminToken, { blocked: false })).status).toBe(200);
    expect((await audit('room.'))[0]).toMatchObject({ action: 'room.unblock' });
    expect((await audit('room.shutdown'))[0]).toMatchObject({ target: room.room_id, details: { reason: 'abuse' } });
  });

  it('media: upload, quarantine (no longer served), delete; audited', async () => {
    const up = server.client();
    await up.register({ username: 'uploader', password: 'uploader password' });
    const token = up.session?.access_token as string;
    const res = await fetch(`${server.url}/api/v1/media`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'text/plain' },
      body: 'hello world',
    });
    expect(res.status).toBeLessThan(300);
    const { media_id } = (await res.json()) as { media_id: string };
    const listed = await call('GET', '/api/v1/admin/media?uploader=@uploader:hs1.test', adminToken);
    expect(listed.body.media.map((m: { media_id: string }) => m.media_id)).toEqual([media_id]);
    expect(listed.body.usage.files).toBeGreaterThanOrEqual(1);
    const download = () => fetch(`${server.url}/api/v1/media/hs1.test/${media_id}`, { headers: { authorization: `Bearer ${token}` } });
    expect((await download()).status).toBe(200);
    expect((await call('PUT', `/api/v1/admin/media/${media_id}/quarantine`, adminToken, { quarantined: true })).status).toBe(200);
    expect((await download()).status).toBe(404);
    expect((await call('DELETE', `/api/v1/admin/media/${media_id}`, adminToken)).status).toBe(200);
    expect((await call('GET', '/api/v1/admin/media?uploader=@uploader:hs1.test', adminToken)).body.total).toBe(0);
    expect((await audit('media.')).map((e) => e.action)).toEqual(['media.delete', 'media.quarantine']);
  });

  it('dashboard, settings (sources, secrets hidden) and audit filters', async () => {
    // Opening the dashboard samples when the last sample is older than 15 s.
    clock.advance(20_000);
    const dash = await call('GET', '/api/v1/admin/dashboard?days=7', adminToken);
    expect(dash.status).toBe(200);
    expect(dash.body.daily).toHaveLength(7);
    expect(dash.body.daily.at(-1).new_users).toBeGreaterThan(3);
    // The reports test sent one message ('buy cheap pills'); the sample counted it.
    expect(dash.body.daily.at(-1).messages).toBeGreaterThanOrEqual(1);
    expect(dash.body.samples.length).toBeGreaterThan(0);
    const settings = await call('GET', '/api/v1/admin/settings', adminToken);
    const byKey = new Map(settings.body.settings.map((e: { key: string }) => [e.key, e]));
    expect(byKey.get('database.url')).toMatchObject({ secret: true, value: '(set; hidden)' });
    expect(JSON.stringify(settings.body)).not.toContain('postgres://');
    expect(byKey.get('media.max_upload_bytes')).toMatchObject({ source: 'default' });
    const all = await call('GET', `/api/v1/admin/audit?actor=${encodeURIComponent(adminId)}&limit=2`, adminToken);
    expect(all.body.entries).toHaveLength(2);
    const older = await call('GET', `/api/v1/admin/audit?before=${all.body.entries[1].id}&limit=1`, adminToken);
    expect(older.body.entries[0].id).toBeLessThan(all.body.entries[1].id);
    // The log is append-only in the database itself.
    await expect(server.services.db('admin_audit_log').delete()).rejects.toThrow(/append-only/);
  });
});

describe('admin jobs with Redis', () => {
  let server: TestServer;
  let redis: TestRedis;
  afterAll(async () => {
    await server?.close();
    await redis?.cleanup();
    // BullMQ's keys sit under a hash-tagged prefix that cleanup() does not match.
    if (redis) {
      const client = new Redis(redis.url);
      const keys = await client.keys(`{${redis.prefix}bull}:*`);
      if (keys.length > 0) await client.del(...keys);
      client.disconnect();
    }
  });

  it('run through the BullMQ queue and report their progress', async () => {
    redis = await createTestRedis();
    server = await startTestServer({ redis: { url: redis.url, key_prefix: redis.prefix } });
    const root = server.client();
    const s = await root.register({ username: 'root', password: 'root password' });
    await server.services.users.setAdmin(s.user_id, true);
    const owner = server.client();
    await owner.register({ username: 'owner', password: 'owner password' });
    const { room_id } = await new RoomsApi(owner).create({ name: 'Big room', visibility: 'public' });
    for (const name of ['m1', 'm2', 'm3']) {
      const c = server.client();
      await c.register({ username: name, password: `${name} password` });
      await new RoomsApi(c).join(room_id);
    }
    const res = await fetch(`${server.url}/api/v1/admin/rooms/${room_id}/shutdown`, {
      method: 'POST',
      headers: { authorization: `Bearer ${s.access_token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ delete: true }),
    });
    expect(res.status).toBe(202);
    const { job } = (await res.json()) as { job: { id: string } };
    // The queue holds (or held) it: BullMQ's keys for the admin queue exist under the prefix.
    const client = new Redis(redis.url);
    expect((await client.keys(`{${redis.prefix}bull}:parley-admin-jobs:*`)).length).toBeGreaterThan(0);
    client.disconnect();
    await expect
      .poll(async () => server.services.admin.jobs.find(job.id), { timeout: 20_000 })
      .toMatchObject({ state: 'done', done: 5, total: 5, result: { removed: 4, purged: true } });
    expect(await server.services.roomRepo.find(room_id)).toBeUndefined();
  });
});
