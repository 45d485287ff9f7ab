import { verifyEd25519 } from '@parley/sdk';
import { describe, expect, it } from 'vitest';
import { generateSigningKey, keyRingOf, publicKeyB64u, signingKeyFromSeed } from '../../src/keys/index.js';
import {
  authenticateRequest,
  MAX_AUTHORIZATION_LENGTH,
  type ParsedAuthorization,
  parseAuthorization,
  REQUEST_TIME_WINDOW_MS,
  type RequestToSign,
  requestSigningInput,
  signRequest,
  verifyRequest,
} from '../../src/transport/index.js';
import { HOSTILE_VALUES } from '../support/hostile-values.js';
import vectors from './vectors/request-auth.json' with { type: 'json' };

const vectorKey = signingKeyFromSeed(Buffer.from(vectors.signed.seedHex, 'hex'), vectors.signed.keyId);
const vectorRing = keyRingOf({
  'a.test': { [vectorKey.keyId]: vectorKey.publicKey },
  'a.test:8448': { [vectorKey.keyId]: vectorKey.publicKey },
  '127.0.0.1:8481': { [vectorKey.keyId]: vectorKey.publicKey },
});

function parsed(header: string): ParsedAuthorization {
  const result = parseAuthorization(header);
  if (!result.ok) throw new Error(result.reason);
  return result.auth;
}

describe('signing vectors', () => {
  it('derives the vector key', () => {
    expect(publicKeyB64u(vectorKey.publicKey)).toBe(vectors.signed.publicKey);
  });

  it.each(vectors.signed.cases)('$name', ({ request, signingInput, header }) => {
    const req = request as RequestToSign;
    expect(new TextDecoder().decode(requestSigningInput(req))).toBe(signingInput);
    expect(signRequest(req, vectorKey)).toBe(header);
    // The browser's Ed25519 (the sdk, on noble) accepts the signature over the same text.
    const sig = parsed(header).signature;
    expect(verifyEd25519(sig, new TextEncoder().encode(signingInput), Buffer.from(vectors.signed.publicKey, 'base64url'))).toBe(true);
  });

  it.each(vectors.signed.cases)('verifies $name as the receiver sees it', async ({ request, header }) => {
    const req = request as RequestToSign;
    const result = await verifyRequest(
      parsed(header),
      { method: req.method, uri: req.uri, destination: req.destination, content: req.content },
      vectorRing,
      { now: req.ts },
    );
    expect(result).toEqual({ ok: true, origin: req.origin, keyId: 'a_vector01' });
  });
});

describe('parseAuthorization', () => {
  const sig = 'A'.repeat(85) + 'A';

  it('reads quoted and unquoted values, case-insensitive names and scheme, and optional whitespace', () => {
    const result = parseAuthorization(`parley  ORIGIN = a.test ,\tdestination="b\\.test", key=ed25519:a_1 , TS = 12 ,sig="${sig}"`);
    expect(result).toMatchObject({ ok: true, auth: { origin: 'a.test', destination: 'b.test', key: 'ed25519:a_1', keyId: 'a_1', ts: 12 } });
  });

  it('reads IPv6 server names with ports', () => {
    expect(parseAuthorization(`Parley origin="[::1]:8448",destination=[2001:db8::1],key="ed25519:k",ts=0,sig=${sig}`)).toMatchObject({
      ok: true,
      auth: { origin: '[::1]:8448', destination: '[2001:db8::1]' },
    });
  });

  it.each(vectors.hostileHeaders)('refuses %s', (_name, header, reason) => {
    const result = parseAuthorization(header.replace('"SIG"', `"${sig}"`));
    expect(result).toMatchObject({ ok: false, code: 'PARLEY_FED_BAD_AUTH' });
    expect((result as { reason: string }).reason).toContain(reason);
  });

  it('refuses a signature with stray low bits (a second spelling of the same bytes)', () => {
    const result = parseAuthorization(`Parley origin=a.test,destination=b.test,key=ed25519:k,ts=1,sig=${'A'.repeat(85)}B`);
    expect(result).toMatchObject({ ok: false, reason: expect.stringContaining('sig is not 64 bytes') });
  });

  it(`refuses headers over ${MAX_AUTHORIZATION_LENGTH} characters before parsing them`, () => {
    const header = `Parley origin="${'a'.repeat(MAX_AUTHORIZATION_LENGTH)}"`;
    expect(parseAuthorization(header)).toMatchObject({ ok: false, reason: expect.stringContaining('longer than') });
  });

  it.each(HOSTILE_VALUES)('returns a failure for %s', (_name, value) => {
    expect(parseAuthorization(value)).toMatchObject({ ok: false, code: 'PARLEY_FED_BAD_AUTH' });
  });
});

describe('verifyRequest', () => {
  const a = generateSigningKey();
  const ring = keyRingOf({ 'a.test': { [a.keyId]: a.publicKey } });
  const request = { method: 'PUT', uri: '/federation/v1/send/t1', origin: 'a.test', destination: 'b.test', content: { pdus: [] } };
  const header = signRequest(request, a);
  const received = { method: 'PUT', uri: '/federation/v1/send/t1', destination: 'b.test', content: { pdus: [] } };

  it('accepts the request as signed and names the origin', async () => {
    expect(await authenticateRequest(header, received, ring)).toEqual({ ok: true, origin: 'a.test', keyId: a.keyId });
  });

  it('refuses a request addressed to another server, before looking up any key', async () => {
    let lookups = 0;
    const result = await authenticateRequest(header, { ...received, destination: 'c.test' }, () => {
      lookups++;
      return a.publicKey;
    });
    expect(result).toMatchObject({ ok: false, code: 'PARLEY_FED_WRONG_DESTINATION' });
    expect(lookups).toBe(0);
  });

  it('refuses an unknown key, and a key lookup that throws', async () => {
    expect(await authenticateRequest(header, received, keyRingOf({}))).toMatchObject({ ok: false, code: 'PARLEY_FED_UNKNOWN_KEY' });
    const failing = async () => {
      throw new Error('connect ECONNREFUSED 10.0.0.1:8448');
    };
    const result = await authenticateRequest(header, received, failing);
    expect(result).toMatchObject({ ok: false, code: 'PARLEY_FED_UNKNOWN_KEY' });
    expect((result as { reason: string }).reason).not.toContain('10.0.0.1');
  });

  it.each([
    ['another method', { method: 'POST' }],
    ['another path', { uri: '/federation/v1/send/t2' }],
    ['an added query', { uri: '/federation/v1/send/t1?x=1' }],
    ['other content', { content: { pdus: [1] } }],
    ['no content', { content: undefined }],
    ['null content', { content: null }],
  ])('refuses a signature when the request has %s', async (_name, change) => {
    expect(await authenticateRequest(header, { ...received, ...change }, ring)).toMatchObject({
      ok: false,
      code: 'PARLEY_FED_BAD_SIGNATURE',
    });
  });

  it('refuses a signature by another key under a known key ID', async () => {
    const forged = signRequest(request, { ...generateSigningKey(), keyId: a.keyId });
    expect(await authenticateRequest(forged, received, ring)).toMatchObject({ ok: false, code: 'PARLEY_FED_BAD_SIGNATURE' });
  });

  it('refuses an origin claiming another server’s key', async () => {
    const claimed = header.replace('origin="a.test"', 'origin="c.test"');
    const ringWithC = keyRingOf({ 'a.test': { [a.keyId]: a.publicKey }, 'c.test': { [a.keyId]: a.publicKey } });
    expect(await authenticateRequest(claimed, received, ringWithC)).toMatchObject({ ok: false, code: 'PARLEY_FED_BAD_SIGNATURE' });
  });

  it('refuses a signature when the signed time is changed in the header', async () => {
    const moved = header.replace(/ts="(\d+)"/, (_m, ts) => `ts="${Number(ts) + 1}"`);
    expect(await authenticateRequest(moved, received, ring)).toMatchObject({ ok: false, code: 'PARLEY_FED_BAD_SIGNATURE' });
  });

  it('refuses content that cannot be canonical JSON as a bad request, not a crash', async () => {
    expect(await authenticateRequest(header, { ...received, content: { n: 1.5 } }, ring)).toMatchObject({
      ok: false,
      code: 'PARLEY_FED_BAD_AUTH',
    });
  });

  it.each(HOSTILE_VALUES)('returns a failure for %s as the parsed header', async (_name, value) => {
    expect(await verifyRequest(value as ParsedAuthorization, received, ring)).toMatchObject({ ok: false, code: 'PARLEY_FED_BAD_AUTH' });
  });

  it.each(HOSTILE_VALUES)('returns a failure for %s as the request', async (_name, value) => {
    const result = await verifyRequest(parsed(header), value as never, ring);
    expect(result.ok).toBe(false);
  });

  it.each(HOSTILE_VALUES)('returns a failure for %s as the key the lookup returns', async (_name, value) => {
    const result = await verifyRequest(parsed(header), received, () => value as never);
    expect(result.ok).toBe(false);
  });
});

describe('security: L4 request signatures are dated and refused outside the time window', () => {
  const a = generateSigningKey();
  const ring = keyRingOf({ 'a.test': { [a.keyId]: a.publicKey } });
  const t0 = 1_765_000_000_000;
  const signed = { method: 'PUT', uri: '/federation/v1/send/t1', origin: 'a.test', destination: 'b.test', content: { pdus: [] }, ts: t0 };
  const captured = signRequest(signed, a);
  const received = { method: 'PUT', uri: '/federation/v1/send/t1', destination: 'b.test', content: { pdus: [] } };

  it('signs the time: the header carries ts and the signing input covers it', () => {
    expect(captured).toContain(`ts="${t0}"`);
    expect(new TextDecoder().decode(requestSigningInput(signed))).toContain(`"ts":${t0}`);
    expect(parsed(captured).ts).toBe(t0);
  });

  it.each([
    ['at the moment it was signed', 0],
    ['just inside the window, later', REQUEST_TIME_WINDOW_MS],
    ['just inside the window, earlier (the sender’s clock is ahead)', -REQUEST_TIME_WINDOW_MS],
  ])('accepts it %s', async (_name, offset) => {
    expect(await authenticateRequest(captured, received, ring, { now: t0 + offset })).toMatchObject({ ok: true });
  });

  it('refuses a captured request replayed after the window, before looking up any key', async () => {
    let lookups = 0;
    const lookup = () => {
      lookups++;
      return a.publicKey;
    };
    const result = await authenticateRequest(captured, received, lookup, { now: t0 + REQUEST_TIME_WINDOW_MS + 1 });
    expect(result).toMatchObject({ ok: false, code: 'PARLEY_FED_STALE_REQUEST', reason: expect.stringContaining('s ago') });
    expect(lookups).toBe(0);
  });

  it('refuses a request dated in the far future (pre-signed to be replayed later)', async () => {
    const future = signRequest({ ...signed, ts: t0 + 24 * 3600_000 }, a);
    const result = await authenticateRequest(future, received, ring, { now: t0 });
    expect(result).toMatchObject({ ok: false, code: 'PARLEY_FED_STALE_REQUEST', reason: expect.stringContaining('in the future') });
  });

  it('honours a configured window', async () => {
    expect(await authenticateRequest(captured, received, ring, { now: t0 + 31_000, windowMs: 30_000 })).toMatchObject({
      ok: false,
      code: 'PARLEY_FED_STALE_REQUEST',
    });
    expect(await authenticateRequest(captured, received, ring, { now: t0 + 30_000, windowMs: 30_000 })).toMatchObject({ ok: true });
  });

  it('refuses a header without ts (the old form) as malformed', async () => {
    const old = captured.replace(/,ts="\d+"/, '');
    expect(await authenticateRequest(old, received, ring, { now: t0 })).toMatchObject({
      ok: false,
      code: 'PARLEY_FED_BAD_AUTH',
      reason: 'parameter ts is missing',
    });
  });

  it('dates a request with the current time when none is given', () => {
    const before = Date.now();
    const ts = parsed(signRequest({ method: 'GET', uri: '/x', origin: 'a.test', destination: 'b.test' }, a)).ts;
    expect(ts).toBeGreaterThanOrEqual(before);
    expect(ts).toBeLessThanOrEqual(Date.now());
  });
});

describe('signRequest', () => {
  const key = generateSigningKey();
  const good: RequestToSign = { method: 'GET', uri: '/x', origin: 'a.test', destination: 'b.test' };

  it.each([
    ['method', { method: 'get' }],
    ['method', { method: 'GET /' }],
    ['uri', { uri: 'x' }],
    ['uri', { uri: '/a b' }],
    ['uri', { uri: '/é' }],
    ['uri', { uri: `/${'a'.repeat(9000)}` }],
    ['origin', { origin: 'a test' }],
    ['destination', { destination: '' }],
    ['content', { content: { n: 1.5 } }],
    ['ts', { ts: -1 }],
    ['ts', { ts: 1.5 }],
    ['ts', { ts: '1' as never }],
    ['ts', { ts: 2 ** 53 }],
  ])('throws a TypeError naming request.%s', (field, change) => {
    expect(() => signRequest({ ...good, ...change }, key)).toThrow(new RegExp(`request\\.${field}`));
  });

  it.each(HOSTILE_VALUES)('throws a TypeError for %s as the request or the key', (_name, value) => {
    expect(() => signRequest(value as never, key)).toThrow(TypeError);
    expect(() => signRequest(good, value as never)).toThrow(TypeError);
  });
});
