import https from 'node:https';
import { buildKeyDocument, generateSigningKey, type SigningKey } from '@parley/federation/keys';
import {
  buildRequestEnvelope,
  parseRelayFrame,
  RELAY_CONNECT_PATH,
  type RelayFrame,
  type RelayRequestEnvelope,
  relayForwardPath,
} from '@parley/federation/relay';
import { isFederationError, signRequest } from '@parley/federation/transport';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { ConfigError, defaultConfig, loadConfig, validateConfig } from '../src/config.js';
import { doctor } from '../src/ops/doctor.js';
import type { RelayHub } from '../src/relay/relay-hub.js';
import { loadIdentity } from '../src/server.js';
import { type Federation, type FedServer, startFederation } from './support/federation.js';
import { until } from './support/net.js';

const MAX_BODY = 65_536;

/** A reserving "server" in a few lines: signs the connect request and answers the relay's key fetch with its own document. */
async function reserve(
  relayPort: number,
  name: string,
  options: { localAddress?: string; key?: SigningKey; silent?: boolean; seen?: string[]; frames?: RelayFrame[] } = {},
): Promise<{ status: number; code?: string; ws?: WebSocket; reserved: Promise<RelayFrame> }> {
  const key = options.key ?? generateSigningKey();
  const authorization = signRequest({ method: 'GET', uri: RELAY_CONNECT_PATH, origin: name, destination: 'r.test' }, key);
  const ws = new WebSocket(`wss://127.0.0.1:${relayPort}${RELAY_CONNECT_PATH}`, {
    headers: { authorization },
    rejectUnauthorized: false,
    ...(options.localAddress ? { localAddress: options.localAddress } : {}),
  });
  let settleReserved: (f: RelayFrame) => void = () => {};
  const reserved = new Promise<RelayFrame>((resolve) => {
    settleReserved = resolve;
  });
  ws.on('message', (data) => {
    const frame = parseRelayFrame(String(data), MAX_BODY);
    if (!frame.ok) return;
    const f = frame.value;
    options.frames?.push(f);
    if (f.type === 'request') options.seen?.push(`${f.request.method} ${f.request.uri}`);
    if (f.type === 'request' && f.request.uri === '/federation/v1/keys' && !options.silent) {
      const doc = buildKeyDocument({ serverName: name, current: key, validForMs: 3_600_000, now: Date.now() });
      const body = Buffer.from(JSON.stringify(doc)).toString('base64url');
      ws.send(JSON.stringify({ type: 'response', id: f.id, response: { v: 1, status: 200, content_type: 'application/json', body } }));
    } else if (f.type === 'reserved' || f.type === 'error') {
      settleReserved(f);
    }
  });
  return new Promise((resolve) => {
    ws.once('open', () => resolve({ status: 101, ws, reserved }));
    ws.once('unexpected-response', (_req, res) => {
      let text = '';
      res.on('data', (c: Buffer) => {
        text += c.toString('utf8');
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, code: JSON.parse(text).error.code, reserved }));
    });
  });
}

/** POSTs a JSON body to the relay's federation listener (self-signed: not verified by this test client). */
function post(port: number, path: string, body: unknown): Promise<{ status: number; body: { error?: { code: string } } }> {
  const payload = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = https.request(
      { host: '127.0.0.1', port, path, method: 'POST', rejectUnauthorized: false, headers: { 'content-type': 'application/json' } },
      (res) => {
        let text = '';
        res.on('data', (c: Buffer) => {
          text += c.toString('utf8');
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text ? JSON.parse(text) : {} }));
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

/**
 * The relay's limits and what a relay cannot do, against real servers on loopback: r.test is
 * a relay with small caps, n.test reserves on it (no inbound port), p.test sends to n.test.
 */
describe('anchor relay: limits and a hostile relay', () => {
  let fed: Federation;
  let r: FedServer;
  let n: FedServer;
  let p: FedServer;
  let relayPort: number;
  let pKey: SigningKey;

  beforeAll(async () => {
    fed = await startFederation(['r.test', 'n.test', 'p.test'], {
      overrides: (name, statics) => {
        if (name === 'r.test') {
          return {
            bootstrap: { announce: true },
            relay: {
              enabled: true,
              reservations_per_ip: 3,
              reservations_per_network: 4,
              reservation_requests_per_second: 5,
              reservation_bytes_per_second: 65_536,
              request_timeout_ms: 3000,
              max_body_bytes: MAX_BODY,
            },
          };
        }
        if (name === 'n.test') return { federation: { listen: false }, relay: { use: 'r.test' } };
        return { federation: { static_servers: { ...statics, 'n.test': 'relay:r.test' } } };
      },
    });
    [r, n, p] = fed.servers as [FedServer, FedServer, FedServer];
    relayPort = r.running.federation?.port as number;
    pKey = await loadIdentity(p.running.config);
    await until(() => n.running.federation?.relay.reserver?.state().status === 'reserved', 30_000);
  }, 120_000);
  afterAll(async () => fed?.close());

  it('a server with federation on, no inbound port and no relay.use does not start, and says what to set', () => {
    const config = defaultConfig();
    config.server_name = 'home.example';
    config.federation.listen = false;
    expect(() => validateConfig(config)).toThrow(ConfigError);
    expect(() => validateConfig(config)).toThrow(/set relay\.use \(PARLEY_RELAY_USE\)/);
    config.relay.use = 'relay.example';
    expect(validateConfig(config).relay.use).toBe('relay.example');
    config.relay.use = null;
    config.federation.enabled = false;
    expect(validateConfig(config).federation.enabled).toBe(false);
    // The same from the environment, as a container would set it.
    const env = { PARLEY_SERVER_NAME: 'home.example', PARLEY_FEDERATION_LISTEN: 'false' };
    expect(() => loadConfig({ env, file: undefined })).toThrow(/relay\.use/);
    const loaded = loadConfig({ env: { ...env, PARLEY_RELAY_USE: 'relay.example' } });
    expect(loaded.federation.listen).toBe(false);
    expect(loaded.relay.use).toBe('relay.example');
    expect(loadConfig({ env: { PARLEY_RELAY_ENABLED: 'true' } }).relay.enabled).toBe(true);
  });

  it('parley doctor on a server without an inbound port says it is reached through its relay', async () => {
    const findings = await doctor(n.running.config, { timeoutMs: 2000 });
    const port = findings.find((f) => f.check === 'federation_port');
    expect(port).toMatchObject({ status: 'ok' });
    expect(port?.detail).toContain('through the relay r.test');
  });

  it('the relay publishes its capability and limits in its key document and its bootstrap descriptor', () => {
    const doc = r.running.federation?.context.keyDocument();
    expect(doc?.capabilities?.relay).toMatchObject({ reservations_per_ip: 3, reservations_per_network: 4, max_body_bytes: MAX_BODY });
    const descriptor = r.running.services.bootstrap?.ownDescriptor();
    expect(descriptor?.capabilities).toContain('relay');
    expect(descriptor?.limits).toMatchObject({ relay_reservations_per_ip: 3, relay_max_body_bytes: MAX_BODY });
    // A server that only reserves publishes where it is reached, not the capability.
    expect(n.running.federation?.context.keyDocument()).toMatchObject({ relay: { via: 'r.test' } });
    expect(n.running.federation?.context.keyDocument().capabilities).toBeUndefined();
  });

  it('reservations from one IP, then from one /16, are refused past their caps with clear codes; freed slots are reusable', async () => {
    // n.test already holds one slot from 127.0.0.1; two more fit (reservations_per_ip 3).
    const a = await reserve(relayPort, 'x1.test');
    const b = await reserve(relayPort, 'x2.test');
    expect([a.status, b.status]).toEqual([101, 101]);
    expect(await a.reserved).toMatchObject({ type: 'reserved', reservation: { relay: 'r.test', server: 'x1.test' } });
    expect(await b.reserved).toMatchObject({ type: 'reserved', reservation: { server: 'x2.test' } });
    const c = await reserve(relayPort, 'x3.test');
    expect(c).toMatchObject({ status: 429, code: 'PARLEY_RELAY_IP_LIMIT' });
    // Another address in the same /16 (127.0.x.x) fits once more (reservations_per_network 4) …
    const d = await reserve(relayPort, 'y1.test', { localAddress: '127.0.0.2' });
    expect(d.status).toBe(101);
    expect(await d.reserved).toMatchObject({ type: 'reserved' });
    // … then the network is full, whatever the address.
    const e = await reserve(relayPort, 'y2.test', { localAddress: '127.0.0.3' });
    expect(e).toMatchObject({ status: 403, code: 'PARLEY_RELAY_NETWORK_LIMIT' });
    const metrics = await (await fetch(`${r.url}/metrics`)).text();
    expect(metrics).toMatch(/parley_relay_refusals_total\{code="PARLEY_RELAY_IP_LIMIT"\} [1-9]/);
    for (const x of [a, b, d]) x.ws?.close();
    await until(async () => {
      const again = await reserve(relayPort, 'x3.test');
      again.ws?.close();
      return again.status === 101;
    }, 10_000);
  });

  it('a relay that alters a forwarded request is caught by the destination (401), which checks the origin signature itself', async () => {
    const hub = r.running.federation?.relay.hub as RelayHub;
    const honest = hub.forward.bind(hub);
    const client = p.running.federation?.context.client;
    if (!client) throw new Error('p.test has no federation');
    const send = () =>
      client.request({ destination: 'n.test', method: 'PUT', path: `/federation/v1/send/t${Date.now()}`, body: { events: [], edus: [] } });
    expect((await send()).status).toBe(200);
    try {
      // Hostile: adds an EDU to the body the origin signed.
      hub.forward = (env: RelayRequestEnvelope) => {
        const body = JSON.parse(Buffer.from(env.body ?? '', 'base64url').toString('utf8'));
        body.edus = [{ type: 'typing', content: { room_id: '!x:p.test', user_id: '@mallory:p.test', typing: true } }];
        return honest({ ...env, body: Buffer.from(JSON.stringify(body)).toString('base64url') });
      };
      const altered = await send().catch((err: unknown) => err);
      expect(isFederationError(altered) && altered.status).toBe(401);
      expect(isFederationError(altered) && (altered.body as { error: { code: string } }).error.code).toBe('PARLEY_FED_BAD_SIGNATURE');
      // Hostile: re-aims the request at another path.
      hub.forward = (env: RelayRequestEnvelope) => honest({ ...env, uri: '/federation/v1/send/re-aimed' });
      const reaimed = await send().catch((err: unknown) => err);
      expect(isFederationError(reaimed) && reaimed.status).toBe(401);
    } finally {
      hub.forward = honest;
    }
    expect((await send()).status).toBe(200);
  });

  it('the relay itself refuses an envelope whose body does not match the origin signature, an oversize body, and an unconnected destination', async () => {
    const uri = '/federation/v1/send/forged';
    const content = { events: [], edus: [] };
    const authorization = signRequest({ method: 'PUT', uri, origin: 'p.test', destination: 'n.test', content }, pKey);
    const good = buildRequestEnvelope({
      destination: 'n.test',
      method: 'PUT',
      uri,
      authorization,
      body: Buffer.from(JSON.stringify(content)),
    });
    const forged: RelayRequestEnvelope = { ...good, body: Buffer.from(JSON.stringify({ events: [], edus: [{}] })).toString('base64url') };
    const refused = await post(relayPort, relayForwardPath('n.test'), forged);
    expect(refused).toMatchObject({ status: 401, body: { error: { code: 'PARLEY_FED_BAD_SIGNATURE' } } });
    const big = { events: [], edus: [], pad: 'x'.repeat(MAX_BODY + 10) };
    const bigAuth = signRequest({ method: 'PUT', uri, origin: 'p.test', destination: 'n.test', content: big }, pKey);
    const oversize = buildRequestEnvelope({
      destination: 'n.test',
      method: 'PUT',
      uri,
      authorization: bigAuth,
      body: Buffer.from(JSON.stringify(big)),
    });
    expect(await post(relayPort, relayForwardPath('n.test'), oversize)).toMatchObject({
      status: 413,
      body: { error: { code: 'PARLEY_RELAY_TOO_LARGE' } },
    });
    const wrongPath = await post(relayPort, relayForwardPath('p.test'), good);
    expect(wrongPath).toMatchObject({ status: 400, body: { error: { code: 'PARLEY_RELAY_BAD_ENVELOPE' } } });
    const keysOfNobody = buildRequestEnvelope({ destination: 'z.test', method: 'GET', uri: '/federation/v1/keys' });
    expect(await post(relayPort, relayForwardPath('z.test'), keysOfNobody)).toMatchObject({
      status: 503,
      body: { error: { code: 'PARLEY_RELAY_NOT_CONNECTED' } },
    });
  });

  it('a reservation is renewed over the same connection and shows in the admin view', async () => {
    const frames: RelayFrame[] = [];
    const held = await reserve(relayPort, 'w1.test', { frames });
    const first = await held.reserved;
    expect(first).toMatchObject({ type: 'reserved', reservation: { server: 'w1.test' } });
    const firstExpiry = first.type === 'reserved' ? first.reservation.expires_at : 0;
    held.ws?.send(JSON.stringify({ type: 'renew' }));
    await until(() => frames.filter((f) => f.type === 'reserved').length === 2, 10_000);
    const renewed = frames.filter((f) => f.type === 'reserved')[1];
    expect(renewed?.type === 'reserved' && renewed.reservation.expires_at).toBeGreaterThanOrEqual(firstExpiry);
    await r.running.services.accounts.createUser('root', 'root password', true);
    const root = r.client();
    await root.login({ username: 'root', password: 'root password' });
    const view = await root.request<{ relay: { reservations: Array<{ server: string; expires_at: number }> } }>(
      'GET',
      '/api/v1/admin/relay',
    );
    expect(view.relay.reservations.map((x) => x.server).sort()).toEqual(['n.test', 'w1.test']);
    // A frame a reserving server never sends ends the connection.
    held.ws?.send(JSON.stringify({ type: 'reserved', reservation: {} }));
    await until(() => held.ws?.readyState === WebSocket.CLOSED, 10_000);
    await until(async () => {
      const again = await root.request<{ relay: { reservations: Array<{ server: string }> } }>('GET', '/api/v1/admin/relay');
      return again.relay.reservations.length === 1;
    }, 10_000);
  });

  it('a reserved server that does not answer costs the caller a 504 after the relay deadline, not a hung request', async () => {
    const seen: string[] = [];
    const mute = await reserve(relayPort, 't1.test', { seen });
    expect(await mute.reserved).toMatchObject({ type: 'reserved' });
    const uri = '/federation/v1/query/profile?user_id=%40someone%3At1.test';
    const authorization = signRequest({ method: 'GET', uri, origin: 'p.test', destination: 't1.test' }, pKey);
    const answer = await post(
      relayPort,
      relayForwardPath('t1.test'),
      buildRequestEnvelope({ destination: 't1.test', method: 'GET', uri, authorization }),
    );
    expect(answer).toMatchObject({ status: 504, body: { error: { code: 'PARLEY_RELAY_TIMEOUT' } } });
    expect(seen).toContain(`GET ${uri}`);
    mute.ws?.close();
  });

  it('a connection still proving its key carries none of the traffic for the server it claims to be', async () => {
    const seen: string[] = [];
    const pending = await reserve(relayPort, 'z1.test', { silent: true, seen });
    expect(pending.status).toBe(101);
    await until(() => seen.length === 1, 10_000);
    const uri = '/federation/v1/query/profile?user_id=%40someone%3Az1.test';
    const authorization = signRequest({ method: 'GET', uri, origin: 'p.test', destination: 'z1.test' }, pKey);
    const answer = await post(
      relayPort,
      relayForwardPath('z1.test'),
      buildRequestEnvelope({ destination: 'z1.test', method: 'GET', uri, authorization }),
    );
    expect(answer).toMatchObject({ status: 503, body: { error: { code: 'PARLEY_RELAY_NOT_CONNECTED' } } });
    // Only the relay's own fetch of the key it needs to check the handshake reached it.
    expect(seen).toEqual(['GET /federation/v1/keys']);
    pending.ws?.close();
  });

  it('bytes per second to one reservation are capped (429)', async () => {
    const one = (i: number) => {
      const uri = `/federation/v1/send/bytes${i}-${Date.now()}`;
      const content = { events: [], edus: [], pad: 'x'.repeat(60_000) };
      const authorization = signRequest({ method: 'PUT', uri, origin: 'p.test', destination: 'n.test', content }, pKey);
      const envelope = buildRequestEnvelope({
        destination: 'n.test',
        method: 'PUT',
        uri,
        authorization,
        body: Buffer.from(JSON.stringify(content)),
      });
      return post(relayPort, relayForwardPath('n.test'), envelope);
    };
    const answers = await Promise.all([0, 1, 2, 3].map(one));
    expect(answers.filter((a) => a.body.error?.code === 'PARLEY_RELAY_BYTE_LIMITED').length).toBeGreaterThan(0);
    // What was carried got n.test's own answer.
    expect(answers.some((a) => a.body.error?.code !== 'PARLEY_RELAY_BYTE_LIMITED')).toBe(true);
  });

  it('requests per second to one reservation are capped (429), and the reservation carries on afterwards', async () => {
    const one = (i: number) => {
      const uri = `/federation/v1/query/profile?user_id=${encodeURIComponent(`@nobody${i}:n.test`)}`;
      const authorization = signRequest({ method: 'GET', uri, origin: 'p.test', destination: 'n.test' }, pKey);
      return post(
        relayPort,
        relayForwardPath('n.test'),
        buildRequestEnvelope({ destination: 'n.test', method: 'GET', uri, authorization }),
      );
    };
    const answers = await Promise.all(Array.from({ length: 40 }, (_, i) => one(i)));
    const limited = answers.filter((a) => a.body.error?.code === 'PARLEY_RELAY_RATE_LIMITED');
    expect(limited.length).toBeGreaterThan(0);
    expect(limited.every((a) => a.status === 429)).toBe(true);
    // The ones carried got n.test's own answer (no such user), not a relay error.
    expect(answers.some((a) => a.status === 404)).toBe(true);
    await until(async () => (await one(99)).status === 404, 10_000);
  });
});
