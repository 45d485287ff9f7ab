import { generateKeyPairSync, sign } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type Router from '@koa/router';
import { canonicalJson } from '@parley/federation/canonical';
import type { BootstrapDescriptor } from '@parley/schemas';
import { RoomsApi } from '@parley/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../src/http/app.js';
import { Metrics } from '../src/metrics.js';
import { callApi } from './support/api-call.js';
import { startTestServer, type TestServer } from './support/server.js';

// Issue 15: every route under /api/v1/admin — read from the app's own routers, not a list
// kept by hand — refuses callers without a token (401) and non-admins (403), refuses bad path
// parameters and bodies with a 400 naming the field, and every change it makes is audited.
// A route added later is covered by the first two at once and fails the third until it says
// which audit entry it writes.

interface Route {
  method: string;
  path: string;
  params: string[];
}

/** The admin routes the running app answers, from each mounted router's stack. */
function adminRoutes(server: TestServer): Route[] {
  const app = createApp(server.services, new Metrics(server.services.db));
  const routes: Route[] = [];
  for (const mw of app.middleware) {
    const router = (mw as { router?: Router }).router;
    if (!router) continue;
    for (const layer of router.stack) {
      if (typeof layer.path !== 'string' || !layer.path.startsWith('/api/v1/admin')) continue;
      const params = [...layer.path.matchAll(/:(\w+)/g)].map((m) => m[1] as string);
      for (const method of layer.methods) if (method !== 'HEAD') routes.push({ method, path: layer.path, params });
    }
  }
  return routes;
}

const key = (r: { method: string; path: string }) => `${r.method} ${r.path}`;

/** A well-formed value for each path parameter (the resource need not exist). */
function sample(param: string, path: string): string {
  const samples: Record<string, string> = {
    userId: '@plain:hs1.test',
    roomId: '!x:hs1.test',
    id: path.includes('/jobs/') ? '00000000-0000-0000-0000-000000000000' : '1',
    mediaId: 'abc',
    batch: 'sub:1',
    server: 'peer.test',
    token: 'abcd',
    name: 'b.test',
  };
  const v = samples[param];
  if (v === undefined) throw new Error(`no sample value for :${param} in ${path}: add one here`);
  return v;
}

function fill(route: Route, values: Record<string, string> = {}): string {
  return route.path.replace(/:(\w+)/g, (_m, p: string) => encodeURIComponent(values[p] ?? sample(p, route.path)));
}

// POST/PUT routes that read no body (they act on the path alone).
const NO_BODY = new Set([
  'POST /api/v1/admin/users/:userId/reactivate',
  'POST /api/v1/admin/federation/destinations/:name/retry',
  'POST /api/v1/admin/federation/policies/undo/:batch',
  'POST /api/v1/admin/federation/subscriptions/:id/refresh',
  'POST /api/v1/admin/updates/check',
]);

// Changes whose audit entries another file checks (they need a verified release).
const AUDITED_ELSEWHERE: Record<string, string> = {
  'PUT /api/v1/admin/updates/client': 'homeserver/test/updates.test.ts',
};

describe('every admin route', () => {
  let server: TestServer;
  let routes: Route[];
  let adminToken: string;
  let adminId: string;
  let userToken: string;

  const call = (method: string, path: string, token: string | null, body?: unknown) => callApi(server.url, method, path, token, body);

  beforeAll(async () => {
    server = await startTestServer();
    routes = adminRoutes(server);
    const admin = server.client();
    const s = await admin.register({ username: 'root', password: 'root password' });
    await server.services.users.setAdmin(s.user_id, true);
    adminToken = s.access_token;
    adminId = s.user_id;
    userToken = (await server.client().register({ username: 'plain', password: 'plain password' })).access_token;
  });
  afterAll(() => server?.close());

  it('are read from the app: every family of the console is there', () => {
    const families = new Set(routes.map((r) => r.path.split('/')[4]));
    for (const f of ['users', 'registration-tokens', 'rooms', 'reports', 'media', 'federation', 'bootstrap', 'updates'])
      expect(families).toContain(f);
    for (const f of ['mailbox', 'relay', 'dashboard', 'settings', 'audit', 'jobs']) expect(families).toContain(f);
    expect(routes.length).toBeGreaterThanOrEqual(50);
    expect(new Set(routes.map(key)).size).toBe(routes.length);
  });

  it('refuse callers without a token (401) and non-admins (403), before reading any input', async () => {
    const wrong: string[] = [];
    for (const r of routes) {
      const body = r.method === 'GET' || r.method === 'DELETE' ? undefined : {};
      const anon = await call(r.method, fill(r), null, body);
      const user = await call(r.method, fill(r), userToken, body);
      if (anon.status !== 401 || user.status !== 403 || user.body.error?.code !== 'PARLEY_FORBIDDEN')
        wrong.push(`${key(r)}: ${anon.status} without a token, ${user.status} ${user.body.error?.code} as a non-admin`);
    }
    expect(wrong).toEqual([]);
  });

  it('answer a malformed path parameter with a 400 naming it', async () => {
    const wrong: string[] = [];
    for (const r of routes) {
      for (const p of r.params) {
        const body = r.method === 'GET' || r.method === 'DELETE' ? undefined : {};
        const res = await call(r.method, fill(r, { [p]: 'bad value!' }), adminToken, body);
        if (res.status !== 400 || res.body.error?.field !== p) wrong.push(`${key(r)} :${p}: ${res.status} field=${res.body.error?.field}`);
      }
    }
    expect(routes.filter((r) => r.params.length > 0).length).toBeGreaterThanOrEqual(25);
    expect(wrong).toEqual([]);
  });

  it('answer a body with a field they do not take with a 400 naming a field', async () => {
    const writes = routes.filter((r) => r.method === 'POST' || r.method === 'PUT');
    for (const k of NO_BODY) expect(writes.map(key)).toContain(k);
    const wrong: string[] = [];
    for (const r of writes.filter((w) => !NO_BODY.has(key(w)))) {
      const res = await call(r.method, fill(r), adminToken, { not_a_field: 1 });
      if (res.status !== 400 || typeof res.body.error?.field !== 'string' || res.body.error.field === '')
        wrong.push(`${key(r)}: ${res.status} ${JSON.stringify(res.body.error ?? res.body)}`);
    }
    expect(wrong).toEqual([]);
  });

  it('write each change to the audit log: who, what, target and IP', async () => {
    // Things to act on: an account with a room, a message, a report and an upload; a
    // destination in the outbox; a signed blocklist served over loopback; a bootstrap entry.
    const victim = server.client();
    const v = await victim.register({ username: 'victim', password: 'victim password' });
    const { room_id: roomId } = await new RoomsApi(victim).create({ name: 'Audited room', visibility: 'public' });
    const sent = await new RoomsApi(victim).send(roomId, 'room.message', { body: 'spam' });
    const reporter = server.client();
    await reporter.register({ username: 'reporter', password: 'reporter password' });
    await new RoomsApi(reporter).join(roomId);
    const report = await call('POST', `/api/v1/rooms/${roomId}/report/${sent.event_id}`, reporter.session?.access_token as string, {
      reason: 'spam',
    });
    const upload = await fetch(`${server.url}/api/v1/media`, {
      method: 'POST',
      headers: { authorization: `Bearer ${v.access_token}`, 'content-type': 'text/plain' },
      body: 'some bytes',
    });
    const { media_id: mediaId } = (await upload.json()) as { media_id: string };
    await server.services.db('destinations').insert({ name: 'b.test', state: 'down', failures: 9, next_try_ts: Date.now() + 3600_000 });
    const now = Date.now();
    const descriptor = {
      server_name: 'peer.test',
      endpoints: [{ host: '192.0.2.7', port: 8448 }],
      verify_keys: {},
      tls_fingerprints: [],
      capabilities: [],
      limits: {},
      issued_ts: now,
      valid_until_ts: now + 86_400_000,
      signatures: {},
    } as unknown as BootstrapDescriptor;
    expect(server.services.bootstrap?.book.add(descriptor, { name: 'admin', host: '' }).kind).toBe('added');
    const { publicKey, privateKey } = generateKeyPairSync('ed25519');
    let issued = 1000;
    const list = () => {
      const doc = { name: 'Audit list', issued_ts: issued, entries: [{ domain: 'listed.example' }] };
      return JSON.stringify({ ...doc, signature: sign(null, Buffer.from(canonicalJson(doc)), privateKey).toString('base64url') });
    };
    const lists: Server = createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(list()));
    await new Promise<void>((resolve) => lists.listen(0, '127.0.0.1', resolve));
    const listUrl = `http://127.0.0.1:${(lists.address() as AddressInfo).port}/list.json`;

    let newest = 0;
    const exercised = new Set<string>();
    const missing: string[] = [];
    /** Makes the change, then finds its entry (newer than any before it) in the audit log. */
    const step = async (route: string, path: string, body: unknown, action: string, target?: string | RegExp) => {
      exercised.add(route);
      const res = await call(route.split(' ')[0] as string, path, adminToken, body);
      expect(res.status, `${route}: ${JSON.stringify(res.body)}`).toBeLessThan(300);
      const entries = (await call('GET', `/api/v1/admin/audit?action=${action}&limit=20`, adminToken)).body.entries as Array<
        Record<string, any>
      >;
      const entry = entries.find((e) => e.action === action && e.id > newest);
      if (!entry) missing.push(`${route} → ${action}`);
      else {
        expect(entry).toMatchObject({ actor: adminId, ip: expect.stringMatching(/127\.0\.0\.1/) });
        if (target !== undefined) expect(entry.target).toMatch(target);
        newest = entry.id;
      }
      return res.body;
    };

    const A = '/api/v1/admin';
    const made = '@made:hs1.test';
    await step('POST /api/v1/admin/users', `${A}/users`, { username: 'made' }, 'user.create', made);
    await step('POST /api/v1/admin/users/:userId/password', `${A}/users/${made}/password`, {}, 'user.reset_password', made);
    await step('PUT /api/v1/admin/users/:userId/admin', `${A}/users/${made}/admin`, { admin: true }, 'user.admin_grant', made);
    await step('PUT /api/v1/admin/users/:userId/admin', `${A}/users/${made}/admin`, { admin: false }, 'user.admin_revoke', made);
    await step('DELETE /api/v1/admin/users/:userId/sessions', `${A}/users/${made}/sessions`, undefined, 'user.end_sessions', made);
    await step('POST /api/v1/admin/users/:userId/deactivate', `${A}/users/${made}/deactivate`, { leave_rooms: false }, 'user.deactivate');
    await step('POST /api/v1/admin/users/:userId/reactivate', `${A}/users/${made}/reactivate`, undefined, 'user.reactivate', made);
    const token = (await step('POST /api/v1/admin/registration-tokens', `${A}/registration-tokens`, {}, 'registration_token.create')).token;
    const tokenRoute = 'DELETE /api/v1/admin/registration-tokens/:token';
    await step(tokenRoute, `${A}/registration-tokens/${token}`, undefined, 'registration_token.delete', `${token.slice(0, 4)}…`);

    const reportId = report.body.report_id as number;
    await step('PUT /api/v1/admin/reports/:id/assign', `${A}/reports/${reportId}/assign`, { assignee: adminId }, 'report.assign');
    await step('POST /api/v1/admin/reports/:id/resolve', `${A}/reports/${reportId}/resolve`, { resolution: 'ok' }, 'report.resolve');
    await step('PUT /api/v1/admin/rooms/:roomId/block', `${A}/rooms/${roomId}/block`, { blocked: true }, 'room.block', roomId);
    const shut = await step('POST /api/v1/admin/rooms/:roomId/shutdown', `${A}/rooms/${roomId}/shutdown`, {}, 'room.shutdown', roomId);
    await expect.poll(async () => (await call('GET', `${A}/jobs/${shut.job.id}`, adminToken)).body.state).toBe('done');
    const mediaRoute = 'PUT /api/v1/admin/media/:mediaId/quarantine';
    await step(mediaRoute, `${A}/media/${mediaId}/quarantine`, { quarantined: true }, 'media.quarantine', mediaId);
    await step('DELETE /api/v1/admin/media/:mediaId', `${A}/media/${mediaId}`, undefined, 'media.delete', mediaId);

    const F = `${A}/federation`;
    await step(
      'POST /api/v1/admin/federation/destinations/:name/retry',
      `${F}/destinations/b.test/retry`,
      undefined,
      'federation.retry',
      'b.test',
    );
    // Retry forgets the backoff (the next sweep delivers); an unknown destination is a 404.
    expect(await server.services.db('destinations').where({ name: 'b.test' }).first()).toMatchObject({
      state: 'up',
      failures: 0,
      next_try_ts: null,
    });
    expect((await call('POST', `${F}/destinations/nowhere.test/retry`, adminToken)).status).toBe(404);
    const block = await step(
      'POST /api/v1/admin/federation/policies',
      `${F}/policies`,
      { domain: 'a.example', kind: 'block' },
      'federation.block',
    );
    await step(
      'DELETE /api/v1/admin/federation/policies/:id',
      `${F}/policies/${block.id}`,
      undefined,
      'federation.block_remove',
      'a.example',
    );
    const again = await step(
      'POST /api/v1/admin/federation/policies',
      `${F}/policies`,
      { domain: 'b.example', kind: 'allow' },
      'federation.allow',
    );
    await step('POST /api/v1/admin/federation/policies/undo/:batch', `${F}/policies/undo/${again.batch}`, undefined, 'federation.undo');
    const imported = await step(
      'POST /api/v1/admin/federation/policies/import',
      `${F}/policies/import`,
      { format: 'csv', data: 'c.example' },
      'federation.import',
    );
    await expect.poll(async () => (await call('GET', `${A}/jobs/${imported.job.id}`, adminToken)).body.state).toBe('done');
    await step('GET /api/v1/admin/federation/policies/export', `${F}/policies/export?format=csv`, undefined, 'federation.export');
    const key64 = publicKey.export({ format: 'jwk' }).x as string;
    const sub = await step(
      'POST /api/v1/admin/federation/subscriptions',
      `${F}/subscriptions`,
      { url: listUrl, public_key: key64 },
      'federation.subscribe',
    );
    issued = 2000;
    const refreshRoute = 'POST /api/v1/admin/federation/subscriptions/:id/refresh';
    await step(refreshRoute, `${F}/subscriptions/${sub.id}/refresh`, undefined, 'federation.subscription_refresh', listUrl);
    await step(
      'DELETE /api/v1/admin/federation/subscriptions/:id',
      `${F}/subscriptions/${sub.id}`,
      undefined,
      'federation.unsubscribe',
      listUrl,
    );
    lists.close();

    await step('PUT /api/v1/admin/bootstrap/:server/pin', `${A}/bootstrap/peer.test/pin`, { pinned: true }, 'bootstrap.pin', 'peer.test');
    await step('DELETE /api/v1/admin/bootstrap/:server', `${A}/bootstrap/peer.test`, undefined, 'bootstrap.prune', 'peer.test');
    await step('POST /api/v1/admin/updates/check', `${A}/updates/check`, undefined, 'updates.check');
    await step('DELETE /api/v1/admin/updates/client', `${A}/updates/client`, undefined, 'updates.client_builtin');

    expect(missing).toEqual([]);
    // Every route that changes something was exercised here (or, named above, elsewhere).
    const changes = routes.filter((r) => r.method !== 'GET').map(key);
    for (const k of Object.keys(AUDITED_ELSEWHERE)) expect(changes).toContain(k);
    expect(changes.filter((k) => !exercised.has(k) && !(k in AUDITED_ELSEWHERE))).toEqual([]);
  });
});
