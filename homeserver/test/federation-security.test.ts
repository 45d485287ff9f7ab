import type { IncomingMessage } from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { generateSigningKey, publicKeyB64u, verifyKeyDocument, verifyNotarized } from '@parley/federation/keys';
import { generateSelfSignedCertificate } from '@parley/federation/tls';
import { REQUEST_TIME_WINDOW_MS, signRequest } from '@parley/federation/transport';
import { ParleyApiError, ParleyClient, RoomsApi } from '@parley/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from './support/net.js';
import { ManualClock, startTestServer, type TestServer } from './support/server.js';

/**
 * Federation security over real TLS between real homeservers (issue 10: L4, L5, L6 and the
 * SSRF guard as the homeserver wires it by default).
 *
 * - hs3.test is a notary; hs1.test trusts it (its real `POST /federation/v1/keys/query`).
 * - hs2.test runs on a manual clock: replays are moved out of its window, its rate limits refill
 *   only when the test says so. Names n0…n39.test lead to a harness that counts what it is asked.
 * - hs6.test runs with the default `allow_private: []`: no loopback or private peer.
 */

interface Harness {
  port: number;
  /** Requests reached as `held*.test`, answered only when released. */
  held: Array<() => void>;
  /** Requests it received, `METHOD path`. */
  requests: string[];
  /** TCP connections it accepted (a dial that fails at TLS still counts). */
  connections(): number;
  close(): Promise<void>;
}

/**
 * A TLS listener on loopback that answers 404 to everything and counts what it is asked;
 * reached as `big.test` (by SNI), it answers a 100 KiB "key document".
 */
async function startHarness(): Promise<Harness> {
  const cert = await generateSelfSignedCertificate('harness.test');
  const requests: string[] = [];
  let connections = 0;
  const held: Array<() => void> = [];
  const server = https.createServer({ cert: cert.certPem, key: cert.keyPem }, (req: IncomingMessage, res) => {
    requests.push(`${req.method} ${req.url}`);
    req.resume();
    const servername = (req.socket as { servername?: string }).servername ?? '';
    if (servername.startsWith('held')) {
      held.push(() => {
        res.writeHead(404, { 'content-type': 'application/json' });
        res.end('{}');
      });
      return;
    }
    if (servername === 'big.test') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ server_name: 'big.test', padding: 'x'.repeat(100 * 1024) }));
      return;
    }
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end('{"error":{"code":"PARLEY_NOT_FOUND","message":"harness"}}');
  });
  server.on('connection', () => {
    connections++;
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    held,
    requests,
    connections: () => connections,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

interface Answer {
  status: number;
  body: { error?: { code: string; message: string }; server_keys?: unknown[] };
}

/** One request to a federation listener, from `localAddress` (any 127/8 address works on Linux). */
function call(
  port: number,
  method: string,
  path: string,
  options: { authorization?: string; body?: unknown; localAddress?: string } = {},
): Promise<Answer> {
  const payload = options.body === undefined ? undefined : JSON.stringify(options.body);
  const headers: Record<string, string> = {};
  if (options.authorization) headers.authorization = options.authorization;
  if (payload !== undefined) headers['content-type'] = 'application/json';
  return new Promise((resolve, reject) => {
    const req = https.request(
      { host: '127.0.0.1', port, method, path, headers, rejectUnauthorized: false, localAddress: options.localAddress, agent: false },
      (res) => {
        let text = '';
        res.on('data', (d) => {
          text += d;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text ? JSON.parse(text) : {} }));
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

const PROFILE = '/federation/v1/query/profile?user_id=%40nobody%3Ahs2.test';

/** How many notary queries a server answered with 200, from its /metrics. */
async function notaryQueries(server: TestServer): Promise<number> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith('parley_http_requests_total{') && l.includes('keys/query') && l.includes('"200"'));
  return line ? Number(line.split(' ').at(-1)) : 0;
}

describe('federation security between real homeservers', () => {
  let harness: Harness;
  let hs1: TestServer;
  let hs2: TestServer;
  let hs3: TestServer;
  let hs6: TestServer;
  const clock2 = new ManualClock();
  const names = Array.from({ length: 40 }, (_, i) => `n${i}.test`);
  const queried = Array.from({ length: 10 }, (_, i) => `q${i}.test`);
  const slow = Array.from({ length: 8 }, (_, i) => `held${i}.test`);
  const fedPort = (s: TestServer) => s.federation?.port as number;

  beforeAll(async () => {
    harness = await startHarness();
    const ports = { hs1: await freePort(), hs2: await freePort(), hs3: await freePort(), hs6: await freePort() };
    const at = (p: number) => `127.0.0.1:${p}`;
    const statics = { 'hs1.test': at(ports.hs1), 'hs2.test': at(ports.hs2), 'hs3.test': at(ports.hs3) };
    // The notary reaches "hs6.test" at hs2's listener: what it fetches names hs2.test, so it
    // vouches for nothing under hs6.test (as a notary would that sees another server there).
    hs3 = await startTestServer({
      server_name: 'hs3.test',
      federation: { port: ports.hs3, static_servers: { ...statics, 'hs6.test': at(ports.hs2) } },
    });
    const notaryKey = hs3.services.identity;
    hs2 = await startTestServer(
      {
        server_name: 'hs2.test',
        federation: {
          port: ports.hs2,
          max_transaction_bytes: 65_536,
          static_servers: {
            ...statics,
            ...Object.fromEntries([...names, ...queried, ...slow, 'big.test'].map((n) => [n, at(harness.port)])),
          },
          remote_key_fetch: {
            per_ip: { burst: 5, per_minute: 5 },
            global: { burst: 8, per_minute: 8 },
            max_concurrent: 4,
            failure_cache_ms: 300_000,
          },
        },
        rate_limits: { enabled: true, remote_query_per_user: { burst: 3, per_minute: 3 } },
      },
      clock2,
    );
    hs1 = await startTestServer({
      server_name: 'hs1.test',
      federation: {
        port: ports.hs1,
        static_servers: { ...statics, 'hs6.test': at(ports.hs6) },
        trusted_notaries: [{ name: 'hs3.test', verify_keys: { [notaryKey.keyId]: publicKeyB64u(notaryKey.publicKey) } }],
      },
    });
    // The default: no allowlist, so no loopback or private peer, and no static map.
    hs6 = await startTestServer({ server_name: 'hs6.test', federation: { port: ports.hs6, allow_private: [] } });
  });

  afterAll(async () => {
    for (const s of [hs1, hs2, hs3, hs6]) await s?.close();
    await harness?.close();
  });

  describe('security: L4 a captured request replayed outside the time window is refused', () => {
    it('accepts a request signed now, and refuses the same bytes once the window has passed', async () => {
      const authorization = signRequest(
        { method: 'GET', uri: PROFILE, origin: 'hs1.test', destination: 'hs2.test', ts: clock2.now() },
        hs1.services.identity,
      );
      const first = await call(fedPort(hs2), 'GET', PROFILE, { authorization });
      expect(first.body.error?.code).not.toMatch(/^PARLEY_FED_/);
      clock2.advance(REQUEST_TIME_WINDOW_MS + 1000);
      const replay = await call(fedPort(hs2), 'GET', PROFILE, { authorization });
      expect(replay.status).toBe(401);
      expect(replay.body.error?.code).toBe('PARLEY_FED_STALE_REQUEST');
      expect(replay.body.error?.message).toMatch(/signed 30\d s ago/);
    });

    it('refuses a request dated in the far future', async () => {
      const authorization = signRequest(
        { method: 'GET', uri: PROFILE, origin: 'hs1.test', destination: 'hs2.test', ts: clock2.now() + 86_400_000 },
        hs1.services.identity,
      );
      const answer = await call(fedPort(hs2), 'GET', PROFILE, { authorization });
      expect(answer.status).toBe(401);
      expect(answer.body.error?.code).toBe('PARLEY_FED_STALE_REQUEST');
      expect(answer.body.error?.message).toMatch(/in the future/);
    });
  });

  it('security: L4 refuses a replayed request before it reads the body (a 100 KiB body over a 64 KiB cap: 401, not 413)', async () => {
    const uri = '/federation/v1/send/replayed';
    const body = { events: [], edus: [{ type: 'x', content: { pad: 'x'.repeat(100 * 1024) } }] };
    const stale = signRequest(
      { method: 'PUT', uri, origin: 'hs1.test', destination: 'hs2.test', content: body, ts: clock2.now() - 3_600_000 },
      hs1.services.identity,
    );
    const answer = await call(fedPort(hs2), 'PUT', uri, { authorization: stale, body });
    expect(answer.status).toBe(401);
    expect(answer.body.error?.code).toBe('PARLEY_FED_STALE_REQUEST');
    const unsigned = await call(fedPort(hs2), 'PUT', uri, { body });
    expect(unsigned.body.error?.code).toBe('PARLEY_FED_BAD_AUTH');
  });

  describe('security: L5 keys are confirmed through the real notary endpoint', () => {
    it('the notary endpoint answers a document it fetched over TLS, countersigned and verifiable', async () => {
      const answer = await call(fedPort(hs3), 'POST', '/federation/v1/keys/query', {
        body: { server_keys: { 'hs2.test': { '*': {} } } },
      });
      expect(answer.status).toBe(200);
      const [doc] = answer.body.server_keys ?? [];
      const ring = (server: string, keyId: string) =>
        server === 'hs3.test' && keyId === hs3.services.identity.keyId ? hs3.services.identity.publicKey : undefined;
      expect(verifyNotarized(doc, 'hs3.test', ring)).toMatchObject({ ok: true });
      const verified = verifyKeyDocument(doc, { expectedServer: 'hs2.test', now: Date.now() });
      expect(verified.ok && verified.keys.get(hs2.services.identity.keyId)?.publicKey.equals(hs2.services.identity.publicKey)).toBe(true);
    });

    it('hs1 trusts hs2’s key at first contact only once hs3 vouched for it', async () => {
      const before = await notaryQueries(hs3);
      const store = hs1.federation?.context.keyStore;
      const key = await store?.getKey('hs2.test', hs2.services.identity.keyId);
      expect(key?.equals(hs2.services.identity.publicKey)).toBe(true);
      expect(await notaryQueries(hs3)).toBe(before + 1);
    });

    it('refuses a server whose keys no notary confirms, and counts it', async () => {
      // hs1 reaches hs6 directly, but the notary sees another server under that name.
      const authorization = signRequest(
        { method: 'GET', uri: '/federation/v1/query/profile?user_id=%40x%3Ahs1.test', origin: 'hs6.test', destination: 'hs1.test' },
        hs6.services.identity,
      );
      const answer = await call(fedPort(hs1), 'GET', '/federation/v1/query/profile?user_id=%40x%3Ahs1.test', { authorization });
      expect(answer.status).toBe(401);
      expect(answer.body.error?.code).toBe('PARLEY_FED_UNKNOWN_KEY');
      expect(hs1.federation?.context.keyStore.lastFailure('hs6.test')).toMatch(/not confirmed by any notary \(hs3\.test\)/);
      const metrics = await (await fetch(`${hs1.url}/metrics`)).text();
      expect(metrics).toMatch(/parley_federation_key_events_total\{type="unconfirmed"\} 1/);
    });
  });

  describe('security: L6 unauthenticated callers cannot make the server dial out without bound', () => {
    const fromOrigin = (origin: string) =>
      signRequest({ method: 'GET', uri: PROFILE, origin, destination: 'hs2.test', ts: clock2.now() }, generateSigningKey());

    it('rate-limits key fetches per caller IP and globally, for new origins and notary queries alike', async () => {
      const port = fedPort(hs2);
      // 20 requests from one address, each naming a new origin: 5 fetches (per-IP burst).
      for (const name of names.slice(0, 20)) {
        const answer = await call(port, 'GET', PROFILE, { authorization: fromOrigin(name), localAddress: '127.0.0.2' });
        expect(answer.body.error?.code).toBe('PARLEY_FED_UNKNOWN_KEY');
      }
      expect(harness.requests).toHaveLength(5);
      expect(new Set(harness.requests)).toEqual(new Set(['GET /federation/v1/keys']));
      // A notary query for 20 more names from another address: 3 more (the global burst is 8).
      const query = await call(port, 'POST', '/federation/v1/keys/query', {
        body: { server_keys: Object.fromEntries(names.slice(20, 40).map((n) => [n, { '*': {} }])) },
        localAddress: '127.0.0.3',
      });
      expect(query).toEqual({ status: 200, body: { server_keys: [] } });
      expect(harness.requests).toHaveLength(8);
      // A third address gets nothing either: the server's own budget is spent.
      await call(port, 'GET', PROFILE, { authorization: fromOrigin('n39.test'), localAddress: '127.0.0.4' });
      expect(harness.requests).toHaveLength(8);
      const metrics = await (await fetch(`${hs2.url}/metrics`)).text();
      expect(metrics).toMatch(/parley_federation_key_events_total\{type="limited"\} \d+/);
    });

    it('does not fetch a name that failed again for failure_cache_ms, though the budget refilled', async () => {
      const port = fedPort(hs2);
      const before = harness.requests.length;
      clock2.advance(120_000); // buckets full again; the 30 s retry of our own lookups has passed
      for (const name of names.slice(0, 5))
        await call(port, 'GET', PROFILE, { authorization: fromOrigin(name), localAddress: '127.0.0.5' });
      expect(harness.requests).toHaveLength(before);
      clock2.advance(300_000);
      for (const name of names.slice(0, 5))
        await call(port, 'GET', PROFILE, { authorization: fromOrigin(name), localAddress: '127.0.0.5' });
      expect(harness.requests).toHaveLength(before + 5);
    });

    it('runs at most max_concurrent key fetches at once; the rest wait in line', async () => {
      const port = fedPort(hs2);
      clock2.advance(60_000); // the global budget (8 a minute) is full again
      const answers = slow.map((name, i) =>
        call(port, 'GET', PROFILE, { authorization: fromOrigin(name), localAddress: i < 4 ? '127.0.0.6' : '127.0.0.7' }),
      );
      // max_concurrent is 4: four reach the harness and hang there, four wait their turn.
      await expect.poll(() => hs2.federation?.context.keyStore.fetchStats(), { timeout: 20_000 }).toEqual({ running: 4, queued: 4 });
      expect(harness.held).toHaveLength(4);
      const metrics = await (await fetch(`${hs2.url}/metrics`)).text();
      expect(metrics).toContain('parley_federation_key_fetches{state="queued"} 4');
      // Answering the held ones frees their slots for the next in line, until all are done.
      await expect
        .poll(
          () => {
            for (const release of harness.held.splice(0)) release();
            return hs2.federation?.context.keyStore.fetchStats();
          },
          { timeout: 20_000 },
        )
        .toEqual({ running: 0, queued: 0 });
      for (const answer of await Promise.all(answers)) expect(answer.body.error?.code).toBe('PARLEY_FED_UNKNOWN_KEY');
      expect(harness.requests.filter((r) => r === 'GET /federation/v1/keys').length).toBeGreaterThanOrEqual(8);
    });
  });

  describe('sweep: other outbound work a remote or local caller can cause is capped', () => {
    it('a key document fetch is capped at 64 KiB (not the transport’s 1 MiB)', async () => {
      const store = hs2.federation?.context.keyStore;
      expect(await store?.getKey('big.test', 'a_1')).toBeUndefined();
      expect(store?.lastFailure('big.test')).toMatch(/longer than the 65536 bytes allowed/);
    });

    it('directory and alias queries to other servers are rate-limited per user, and a refused one dials nothing', async () => {
      const client = new ParleyClient({ baseUrl: hs2.url });
      await client.register({ username: 'curious', password: 'curious password' });
      const token = client.session?.access_token;
      const ask = (path: string) => fetch(`${hs2.url}${path}`, { headers: { authorization: `Bearer ${token}` } });
      const before = harness.connections();
      const allowed = [
        await ask(`/api/v1/directory/rooms?server=${queried[0]}`),
        await ask(`/api/v1/directory/alias/${encodeURIComponent(`#a:${queried[1]}`)}`),
        await ask(`/api/v1/directory/rooms?server=${queried[2]}`),
      ];
      for (const res of allowed) expect(res.status).not.toBe(429);
      const dialled = harness.connections();
      expect(dialled).toBeGreaterThan(before);
      for (const name of queried.slice(3)) {
        const res = await ask(`/api/v1/directory/rooms?server=${name}`);
        expect(res.status).toBe(429);
        expect(((await res.json()) as { error: { code: string } }).error.code).toBe('PARLEY_RATE_LIMITED');
      }
      expect(harness.connections()).toBe(dialled);
    });
  });

  describe('the SSRF guard as a homeserver wires it by default (no allowlist)', () => {
    const loopbackNames = () => [`127.0.0.1:${harness.port}`, `localhost:${harness.port}`, `[::1]:${harness.port}`];

    it('an inbound request naming a loopback origin does not make it dial that origin', async () => {
      const before = harness.requests.length;
      for (const origin of loopbackNames()) {
        const uri = '/federation/v1/query/profile?user_id=%40x%3Ahs6.test';
        const authorization = signRequest({ method: 'GET', uri, origin, destination: 'hs6.test' }, generateSigningKey());
        const answer = await call(fedPort(hs6), 'GET', uri, { authorization });
        expect(answer.status).toBe(401);
        expect(answer.body.error?.code).toBe('PARLEY_FED_UNKNOWN_KEY');
        expect(hs6.federation?.context.keyStore.lastFailure(origin)).toMatch(/non-public address/);
      }
      expect(harness.requests).toHaveLength(before);
    });

    it('the notary endpoint does not fetch loopback names', async () => {
      const before = harness.requests.length;
      const answer = await call(fedPort(hs6), 'POST', '/federation/v1/keys/query', {
        body: { server_keys: Object.fromEntries(loopbackNames().map((n) => [n, { '*': {} }])) },
      });
      expect(answer).toEqual({ status: 200, body: { server_keys: [] } });
      for (const name of loopbackNames()) expect(hs6.federation?.context.keyStore.lastFailure(name)).toMatch(/non-public address/);
      expect(harness.requests).toHaveLength(before);
    });

    it('a local user joining a room on a loopback server is refused, and nothing is dialled', async () => {
      const before = harness.requests.length;
      const client = new ParleyClient({ baseUrl: hs6.url });
      await client.register({ username: 'ssrf', password: 'ssrf password' });
      const error = await new RoomsApi(client).join(`!x:127.0.0.1:${harness.port}`).catch((err: unknown) => err);
      expect(error).toBeInstanceOf(ParleyApiError);
      expect(error).toMatchObject({ status: 502, code: 'PARLEY_UNAVAILABLE' });
      expect((error as ParleyApiError).message).toMatch(/non-public address and the allowlist does not cover it/);
      expect(harness.requests).toHaveLength(before);
    });
  });
});
