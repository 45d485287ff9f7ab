import type { AddressInfo } from 'node:net';
import { createServer as createTcpServer, type Server as TcpServer } from 'node:net';
import { Agent, request as undiciRequest } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateSigningKey, keyRingOf, type SigningKey } from '../../src/keys/index.js';
import { generateSelfSignedCertificate, type TlsCertificate } from '../../src/tls/index.js';
import {
  AddressPolicy,
  FederationClient,
  type FederationClientOptions,
  FederationError,
  type FederationErrorKind,
} from '../../src/transport/index.js';
import { authenticatingHandler, json, loopbackLookup, recordingLog, startHttps, type TestServer } from './support.js';
import vectors from './vectors/request-auth.json' with { type: 'json' };

const LOOPBACK = new AddressPolicy({ allow: ['127.0.0.0/8', '::1'] });

let a: SigningKey;
let bCert: TlsCertificate;
let b: TestServer;
let hits: Record<string, number>;
let connections = 0;
let streamSocketClosed: Promise<void> | undefined;
const clients: FederationClient[] = [];

function client(options: Partial<FederationClientOptions> = {}): FederationClient {
  const c = new FederationClient({
    serverName: 'a.test',
    signingKey: a,
    policy: LOOPBACK,
    staticServers: { 'b.test': `127.0.0.1:${b.port}`, 'c.test': `127.0.0.1:${b.port}` },
    pinsFor: (name) => (name === 'b.test' || name === 'c.test' ? [bCert.fingerprint] : undefined),
    ...options,
  });
  clients.push(c);
  return c;
}

async function failure(promise: Promise<unknown>): Promise<FederationError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(err instanceof FederationError)) throw new Error(`expected a FederationError, got ${String(err)}`);
  return err;
}

async function expectKind(promise: Promise<unknown>, kind: FederationErrorKind): Promise<FederationError> {
  const err = await failure(promise);
  expect(err.kind, err.message).toBe(kind);
  return err;
}

beforeAll(async () => {
  a = generateSigningKey();
  bCert = await generateSelfSignedCertificate('b.test');
  hits = {};
  const authenticated = authenticatingHandler('b.test', keyRingOf({ 'a.test': { [a.keyId]: a.publicKey } }));
  b = await startHttps(bCert, (req, res) => {
    const path = req.url!.split('?')[0]!;
    hits[path] = (hits[path] ?? 0) + 1;
    switch (path) {
      case '/stream': {
        // Never ends on its own: 64 KiB chunks for as long as the client reads.
        streamSocketClosed = new Promise((resolve) => req.socket.once('close', () => resolve()));
        res.writeHead(200, { 'content-type': 'application/json' });
        const chunk = Buffer.alloc(64 * 1024, 0x20);
        const pump = () => {
          while (!res.destroyed && res.write(chunk));
          if (!res.destroyed) res.once('drain', pump);
        };
        pump();
        return;
      }
      case '/declared':
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(2 * 1024 * 1024) });
        res.write('[');
        return;
      case '/big':
        return json(res, 200, { blob: 'x'.repeat(1536 * 1024) });
      case '/hang':
        return;
      case '/drip': {
        res.writeHead(200, { 'content-type': 'application/json' });
        const timer = setInterval(() => res.write(' '), 50);
        res.on('close', () => clearInterval(timer));
        return;
      }
      case '/redirect':
        res.writeHead(302, { location: `https://127.0.0.1:${b.port}/federation/v1/echo` });
        return res.end();
      case '/not-json':
        res.writeHead(200, { 'content-type': 'text/html' });
        return res.end('<html>');
      case '/big-header':
        res.writeHead(200, { 'x-filler': 'x'.repeat(20 * 1024), 'content-type': 'application/json' });
        return res.end('{}');
      case '/open':
        return json(res, 200, {});
      case '/error':
        return json(res, 404, { errcode: 'PARLEY_NOT_FOUND', error: 'no such room' });
      default:
        return void authenticated(req, res);
    }
  });
  b.server.on('secureConnection', () => {
    connections++;
  });
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await b.close();
});

describe('signed requests', () => {
  it('round-trips a signed PUT with a body and a signed GET with a query, verified by the receiver', async () => {
    const c = client();
    const put = await c.request({ destination: 'b.test', method: 'PUT', path: '/federation/v1/send/t1', body: { pdus: [{ n: 1 }] } });
    expect(put).toMatchObject({
      status: 200,
      body: { origin: 'a.test', keyId: a.keyId, uri: '/federation/v1/send/t1', content: { pdus: [{ n: 1 }] } },
    });
    const get = await c.request({ destination: 'b.test', method: 'GET', path: '/federation/v1/rooms/!r:b.test/events?from_seq=3' });
    expect(get.body).toMatchObject({ method: 'GET', uri: '/federation/v1/rooms/!r:b.test/events?from_seq=3', content: null });
  });

  it('reuses pooled connections per destination, up to connectionsPerDestination', async () => {
    const single = client({ connectionsPerDestination: 1 });
    let before = connections;
    for (let i = 0; i < 5; i++) await single.request({ destination: 'b.test', method: 'GET', path: '/federation/v1/ping' });
    expect(connections - before).toBe(1);
    const pooled = client();
    before = connections;
    await Promise.all(
      Array.from({ length: 12 }, () => pooled.request({ destination: 'b.test', method: 'GET', path: '/federation/v1/ping' })),
    );
    expect(connections - before).toBe(4);
  });

  it.each([
    ['a wrong destination', 'PARLEY_FED_WRONG_DESTINATION', () => client().request({ destination: 'c.test', method: 'GET', path: '/x' })],
    [
      'an unknown key',
      'PARLEY_FED_UNKNOWN_KEY',
      () => client({ signingKey: generateSigningKey() }).request({ destination: 'b.test', method: 'GET', path: '/x' }),
    ],
    [
      'a bad signature',
      'PARLEY_FED_BAD_SIGNATURE',
      () =>
        client({ signingKey: { ...generateSigningKey(), keyId: a.keyId } }).request({ destination: 'b.test', method: 'GET', path: '/x' }),
    ],
    ['no signature', 'PARLEY_FED_BAD_AUTH', () => client().request({ destination: 'b.test', method: 'GET', path: '/x', signed: false })],
  ])('is refused by the receiver for %s, as an http failure carrying the code', async (_name, code, send) => {
    const err = await expectKind(send(), 'http');
    expect(err.status).toBe(401);
    expect(err.body).toMatchObject({ errcode: code });
  });

  // Sent raw (undici would refuse to send control characters at all, so those rows are skipped here).
  const sendable = vectors.hostileHeaders.filter(([, header]) => header !== '' && /^[\t\x20-\x7e]*$/.test(header!));
  it.each(sendable)('answers 401 PARLEY_FED_BAD_AUTH to a malformed header: %s', async (_name, header) => {
    const dispatcher = new Agent({ connect: { rejectUnauthorized: false } });
    try {
      const res = await undiciRequest(`https://127.0.0.1:${b.port}/federation/v1/x`, { dispatcher, headers: { authorization: header! } });
      expect(res.statusCode).toBe(401);
      expect(await res.body.json()).toMatchObject({ errcode: 'PARLEY_FED_BAD_AUTH' });
    } finally {
      await dispatcher.close();
    }
  });
});

describe('TLS', () => {
  it('accepts a pinned self-signed certificate and refuses one that is not pinned', async () => {
    expect((await client().request({ destination: 'b.test', method: 'GET', path: '/x' })).status).toBe(200);
    const other = (await generateSelfSignedCertificate('b.test')).fingerprint;
    const err = await expectKind(client({ pinsFor: () => [other] }).request({ destination: 'b.test', method: 'GET', path: '/x' }), 'tls');
    expect(err.message).toContain('is not pinned');
  });

  it('verifies WebPKI when nothing is pinned: refused without the CA, accepted with it, refused for another name', async () => {
    await expectKind(client({ pinsFor: () => undefined }).request({ destination: 'b.test', method: 'GET', path: '/x' }), 'tls');
    await expectKind(client({ pinsFor: () => [] }).request({ destination: 'b.test', method: 'GET', path: '/x' }), 'tls');
    const withCa = client({ pinsFor: () => undefined, ca: bCert.certPem });
    expect((await withCa.request({ destination: 'b.test', method: 'GET', path: '/x' })).status).toBe(200);
    // c.test maps to the same server, whose certificate names b.test only.
    const err = await expectKind(withCa.request({ destination: 'c.test', method: 'GET', path: '/x' }), 'tls');
    expect(err.message).toContain('ERR_TLS_CERT_ALTNAME_INVALID');
  });

  it("reports the certificate's fingerprint with tls: 'any' (for self-signed key documents)", async () => {
    const res = await client({ pinsFor: () => undefined }).request({
      destination: 'b.test',
      method: 'GET',
      path: '/open',
      tls: 'any',
      signed: false,
    });
    expect(res.tlsFingerprint).toBe(bCert.fingerprint);
  });
});

describe('SSRF guard', () => {
  it('refuses loopback without an allowlist, before any connection, and allows it with 127.0.0.0/8', async () => {
    const before = hits['/x'] ?? 0;
    const connections = b.server.listenerCount('secureConnection');
    const err = await expectKind(
      client({ policy: new AddressPolicy() }).request({ destination: 'b.test', method: 'GET', path: '/x' }),
      'ssrf',
    );
    expect(err.destination).toBe('b.test');
    const literal = `127.0.0.1:${b.port}`;
    await expectKind(client({ policy: new AddressPolicy() }).request({ destination: literal, method: 'GET', path: '/x' }), 'ssrf');
    expect(hits['/x'] ?? 0).toBe(before);
    expect(b.server.listenerCount('secureConnection')).toBe(connections);
    const allowed = client({ policy: new AddressPolicy({ allow: ['127.0.0.0/8'] }) });
    expect((await allowed.request({ destination: 'b.test', method: 'GET', path: '/x' })).status).toBe(200);
  });

  it('checks the resolved address of a host name: localhost is refused unless allowlisted', async () => {
    const destination = `localhost:${b.port}`;
    const pinsFor = () => [bCert.fingerprint];
    const log = recordingLog();
    const err = await expectKind(
      client({ policy: new AddressPolicy(), pinsFor, log }).request({ destination, method: 'GET', path: '/x' }),
      'ssrf',
    );
    expect(err.message).toMatch(/localhost resolves only to non-public addresses \(.*127\.0\.0\.1/);
    expect(log.lines.some((l) => l.message.startsWith('connect: refusing a non-public address'))).toBe(true);
    // Allowed now; the receiver answers 401 because the request names localhost, not b.test.
    const allowed = client({ policy: new AddressPolicy({ allow: ['127.0.0.0/8', '::1'] }), pinsFor });
    const refused = await expectKind(allowed.request({ destination, method: 'GET', path: '/x' }), 'http');
    expect(refused.body).toMatchObject({ errcode: 'PARLEY_FED_WRONG_DESTINATION' });
  });

  it('reports a name that does not resolve as dns', async () => {
    const c = client({ lookup: loopbackLookup });
    await expectKind(c.request({ destination: 'nowhere.example:8448', method: 'GET', path: '/x' }), 'dns');
  });

  it('reports a refused connection as connect', async () => {
    const closed = createTcpServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    await expectKind(client().request({ destination: `127.0.0.1:${port}`, method: 'GET', path: '/x' }), 'connect');
  });
});

describe('caps', () => {
  it('stops reading a response over the cap and closes its connection', async () => {
    const c = client();
    const err = await expectKind(c.request({ destination: 'b.test', method: 'GET', path: '/stream' }), 'too_large');
    expect(err.status).toBe(200);
    await streamSocketClosed;
    // The pool is still usable.
    expect((await c.request({ destination: 'b.test', method: 'GET', path: '/x' })).status).toBe(200);
  });

  it('refuses a declared length over the cap at once', async () => {
    await expectKind(client().request({ destination: 'b.test', method: 'GET', path: '/declared' }), 'too_large');
  });

  it('lets one request raise its cap (media)', async () => {
    const c = client();
    await expectKind(c.request({ destination: 'b.test', method: 'GET', path: '/big' }), 'too_large');
    const res = await c.request({ destination: 'b.test', method: 'GET', path: '/big', maxBytes: 2 * 1024 * 1024 });
    expect((res.body as { blob: string }).blob).toHaveLength(1536 * 1024);
  });

  it('refuses oversized response headers', async () => {
    await expectKind(client().request({ destination: 'b.test', method: 'GET', path: '/big-header' }), 'too_large');
  });

  it('times out a server that never answers', async () => {
    const c = client({ limits: { headersTimeoutMs: 300 } });
    await expectKind(c.request({ destination: 'b.test', method: 'GET', path: '/hang' }), 'timeout');
  });

  it('times out a body that drips forever under the whole-request deadline', async () => {
    await expectKind(client().request({ destination: 'b.test', method: 'GET', path: '/drip', timeoutMs: 400 }), 'timeout');
  });

  it('times out a TLS handshake that never happens', async () => {
    let tcp: TcpServer | undefined;
    try {
      tcp = createTcpServer(() => {});
      await new Promise<void>((resolve) => tcp!.listen(0, '127.0.0.1', resolve));
      const port = (tcp.address() as AddressInfo).port;
      const c = client({ limits: { connectTimeoutMs: 300 } });
      await expectKind(c.request({ destination: `127.0.0.1:${port}`, method: 'GET', path: '/x' }), 'timeout');
    } finally {
      tcp?.close();
    }
  });
});

describe('responses', () => {
  it('does not follow redirects', async () => {
    const before = hits['/federation/v1/echo'] ?? 0;
    const err = await expectKind(client().request({ destination: 'b.test', method: 'GET', path: '/redirect' }), 'http');
    expect(err.status).toBe(302);
    expect(hits['/federation/v1/echo'] ?? 0).toBe(before);
  });

  it('reports an error status with its parsed body', async () => {
    const err = await expectKind(client().request({ destination: 'b.test', method: 'GET', path: '/error' }), 'http');
    expect(err).toMatchObject({ status: 404, body: { errcode: 'PARLEY_NOT_FOUND' } });
    expect(err.message).toContain('404 PARLEY_NOT_FOUND');
  });

  it('reports a body that is not JSON as bad_json', async () => {
    await expectKind(client().request({ destination: 'b.test', method: 'GET', path: '/not-json' }), 'bad_json');
  });

  it('answers with the bytes themselves for raw requests (media), errors still parsed', async () => {
    const res = await client().request({ destination: 'b.test', method: 'GET', path: '/not-json', raw: true });
    expect(Buffer.isBuffer(res.body)).toBe(true);
    expect((res.body as Buffer).toString('utf8')).toBe('<html>');
    const err = await expectKind(client().request({ destination: 'b.test', method: 'GET', path: '/error', raw: true }), 'http');
    expect(err).toMatchObject({ status: 404, body: { errcode: 'PARLEY_NOT_FOUND' } });
    await expectKind(client().request({ destination: 'b.test', method: 'GET', path: '/big', raw: true }), 'too_large');
  });
});

describe('requests the caller got wrong', () => {
  it.each([
    ['method', { method: 'get' }],
    ['path', { path: 'x' }],
    ['path', { path: '/a b' }],
    ['tls', { tls: 'none' }],
  ])('throw a TypeError naming request.%s', async (field, change) => {
    await expect(client().request({ destination: 'b.test', method: 'GET', path: '/x', ...change } as never)).rejects.toThrow(
      new RegExp(`request\\.${field}`),
    );
  });

  it('throws a TypeError for a body that is not canonical JSON, before sending', async () => {
    await expect(client().request({ destination: 'b.test', method: 'PUT', path: '/x', body: { n: 0.5 } })).rejects.toThrow(/body\.n/);
  });

  it('refuses requests after close()', async () => {
    const c = client();
    await c.close();
    await expect(c.request({ destination: 'b.test', method: 'GET', path: '/x' })).rejects.toThrow(/closed/);
  });
});

describe('discovery over HTTPS', () => {
  let wkCert: TlsCertificate;
  let apiCert: TlsCertificate;
  let wk: TestServer;
  let api: TestServer;
  let wellKnownHits: string[];

  beforeAll(async () => {
    [wkCert, apiCert] = await Promise.all([generateSelfSignedCertificate('wk.test'), generateSelfSignedCertificate('api.test')]);
    wellKnownHits = [];
    api = await startHttps(apiCert, authenticatingHandler('wk.test', keyRingOf({ 'a.test': { [a.keyId]: a.publicKey } })));
    wk = await startHttps(wkCert, (req, res) => {
      wellKnownHits.push(`${req.headers.host} ${req.url}`);
      if (req.url === '/big') return json(res, 200, { server: `api.test:${api.port}`, padding: 'x'.repeat(65 * 1024) });
      if (req.url === '/redirect') {
        res.writeHead(302, { location: '/.well-known/parley/server' });
        return res.end();
      }
      if (req.url !== '/.well-known/parley/server') return json(res, 404, {});
      return json(res, 200, { server: `api.test:${api.port}` });
    });
  });

  afterAll(async () => {
    await Promise.all([wk.close(), api.close()]);
  });

  function discoveringClient(options: Partial<FederationClientOptions> = {}) {
    return client({
      lookup: loopbackLookup,
      wellKnownUrl: (name) => `https://${name}:${wk.port}/.well-known/parley/server`,
      pinsFor: () => undefined,
      ca: [wkCert.certPem, apiCert.certPem],
      staticServers: {},
      ...options,
    });
  }

  it('follows a well-known delegation (verified by WebPKI for the delegated name), once per TTL', async () => {
    const log = recordingLog();
    const c = discoveringClient({ log });
    const res = await c.request({ destination: 'wk.test', method: 'PUT', path: '/federation/v1/send/t9', body: { pdus: [] } });
    expect(res.body).toMatchObject({ origin: 'a.test', uri: '/federation/v1/send/t9' });
    await c.request({ destination: 'wk.test', method: 'GET', path: '/federation/v1/ping' });
    expect(wellKnownHits).toEqual([`wk.test:${wk.port} /.well-known/parley/server`]);
    expect(log.lines.filter((l) => l.message.startsWith('discovery:')).map((l) => l.message)).toEqual(['discovery: well-known delegation']);
    expect(log.lines.find((l) => l.message === 'discovery: well-known delegation')?.fields).toMatchObject({
      target: `api.test:${api.port}`,
    });
  });

  it('prefers the static map and never asks the well-known', async () => {
    wellKnownHits.length = 0;
    const c = discoveringClient({ staticServers: { 'wk.test': `api.test:${api.port}` } });
    expect((await c.request({ destination: 'wk.test', method: 'GET', path: '/federation/v1/ping' })).status).toBe(200);
    expect(wellKnownHits).toEqual([]);
  });

  it('falls back to the name itself on port 8448 when the well-known cannot be fetched', async () => {
    const log = recordingLog();
    const c = discoveringClient({ log, wellKnownUrl: (name) => `https://${name}:${wk.port}/missing` });
    expect(await c.discovery.resolve('wk.test')).toMatchObject({ host: 'wk.test', port: 8448, source: 'default' });
    const step = log.lines.find((l) => l.message === 'discovery: no well-known delegation, using the name itself');
    expect(step?.fields).toMatchObject({ destination: 'wk.test', reason: expect.stringContaining('404') });
  });

  it.each([
    ['an answer over 64 KiB', '/big', /65536/],
    ['a redirect (never followed)', '/redirect', /302/],
  ])('falls back to the name itself on %s from the well-known', async (_name, path, reason) => {
    wellKnownHits.length = 0;
    const log = recordingLog();
    const c = discoveringClient({ log, wellKnownUrl: (name) => `https://${name}:${wk.port}${path}` });
    expect(await c.discovery.resolve('wk.test')).toMatchObject({ host: 'wk.test', port: 8448, source: 'default' });
    expect(wellKnownHits).toEqual([`wk.test:${wk.port} ${path}`]);
    const step = log.lines.find((l) => l.message === 'discovery: no well-known delegation, using the name itself');
    expect((step?.fields as { reason?: string } | undefined)?.reason).toMatch(reason);
  });

  it('runs the well-known fetch through the SSRF guard too', async () => {
    const log = recordingLog();
    const c = discoveringClient({ log, policy: new AddressPolicy() });
    expect(await c.discovery.resolve('wk.test')).toMatchObject({ source: 'default' });
    expect(log.lines.find((l) => l.message.startsWith('discovery: no well-known'))?.fields).toMatchObject({
      reason: expect.stringContaining('non-public'),
    });
  });
});
