import { describe, expect, it } from 'vitest';
import { generateSigningKey } from '../../src/keys/index.js';
import {
  buildRequestEnvelope,
  envelopeContent,
  envelopeOrigin,
  parseRelayFrame,
  parseRequestEnvelope,
  parseResponseEnvelope,
  type RelayRequestEnvelope,
  ReservationLedger,
  relayForwardPath,
  TokenBucket,
  verifyRequestEnvelope,
} from '../../src/relay/index.js';
import { signRequest } from '../../src/transport/index.js';

const NOW = Date.parse('2026-12-06T00:00:00Z');
const origin = generateSigningKey();
const lookup = (server: string, keyId: string) => (server === 'a.test' && keyId === origin.keyId ? origin.publicKey : undefined);

function signed(content: unknown = { events: [], edus: [] }, uri = '/federation/v1/send/t1'): RelayRequestEnvelope {
  const authorization = signRequest({ method: 'PUT', uri, origin: 'a.test', destination: 'n.test', content, ts: NOW }, origin);
  return buildRequestEnvelope({ destination: 'n.test', method: 'PUT', uri, authorization, body: Buffer.from(JSON.stringify(content)) });
}

describe('relay envelope', () => {
  it('carries the request as signed: the origin signature verifies for the destination, not for the relay', async () => {
    const envelope = signed();
    expect(envelopeOrigin(envelope)).toBe('a.test');
    expect(envelopeContent(envelope)).toEqual({ ok: true, value: { events: [], edus: [] } });
    expect(await verifyRequestEnvelope(envelope, lookup, { now: NOW })).toMatchObject({ ok: true, origin: 'a.test' });
    expect(parseRequestEnvelope(JSON.parse(JSON.stringify(envelope)), 1024)).toEqual({ ok: true, value: envelope });
    expect(relayForwardPath('n.test:8448')).toBe('/federation/v1/relay/forward/n.test%3A8448');
  });

  it('any change a relay makes is caught: body, URI, method, destination, header', async () => {
    const envelope = signed();
    const altered: RelayRequestEnvelope[] = [
      { ...envelope, body: Buffer.from(JSON.stringify({ events: [], edus: [{}] })).toString('base64url') },
      { ...envelope, uri: '/federation/v1/send/t2' },
      { ...envelope, method: 'POST' },
      { ...envelope, destination: 'm.test' },
      { ...envelope, authorization: (envelope.authorization as string).replace(/sig="[^"]{4}/, 'sig="AAAA') },
    ];
    for (const env of altered) {
      const result = await verifyRequestEnvelope(env, lookup, { now: NOW });
      expect(result.ok).toBe(false);
    }
    expect(await verifyRequestEnvelope(envelope, lookup, { now: NOW + 10 * 60_000 })).toMatchObject({ code: 'PARLEY_FED_STALE_REQUEST' });
  });

  it('refuses malformed envelopes with a reason naming the field, and never throws', () => {
    const good = signed();
    const cases: Array<[unknown, RegExp]> = [
      [null, /not a JSON object/],
      [[good], /not a JSON object/],
      [{ ...good, extra: 1 }, /unknown field/],
      [{ ...good, v: 2 }, /^v:/],
      [{ ...good, destination: 'not a name' }, /destination/],
      [{ ...good, method: 'put' }, /method/],
      [{ ...good, uri: '/_matrix/x' }, /uri/],
      [{ ...good, uri: '/federation/v1/relay/forward/x.test' }, /relay endpoint/],
      [{ ...good, authorization: undefined }, /authorization: missing/],
      [{ ...good, body: 'not base64url!' }, /body/],
      [{ ...good, content_type: undefined }, /content_type/],
      [{ v: 1, destination: 'n.test', method: 'GET', uri: '/federation/v1/keys', content_type: 'application/json' }, /without a body/],
    ];
    for (const [value, reason] of cases) {
      const parsed = parseRequestEnvelope(value, 1024);
      expect(parsed.ok).toBe(false);
      if (!parsed.ok) expect(parsed.reason).toMatch(reason);
    }
    expect(parseRequestEnvelope({ v: 1, destination: 'n.test', method: 'GET', uri: '/federation/v1/keys' }, 1024).ok).toBe(true);
    const big = signed({ pad: 'x'.repeat(2000) });
    expect(parseRequestEnvelope(big, 1024)).toMatchObject({ ok: false, reason: expect.stringMatching(/more than 1024 bytes/) });
    expect(parseResponseEnvelope({ v: 1, status: 101 }, 10).ok).toBe(false);
    expect(parseResponseEnvelope({ v: 1, status: 200, body: 'AAAA' }, 10).ok).toBe(true);
  });

  it('parses WebSocket frames with bounds', () => {
    const request = parseRelayFrame(JSON.stringify({ type: 'request', id: '7', request: signed() }), 1024);
    expect(request).toMatchObject({ ok: true, value: { type: 'request', id: '7' } });
    expect(parseRelayFrame(JSON.stringify({ type: 'request', id: 'x', request: signed() }), 1024).ok).toBe(false);
    expect(parseRelayFrame('{', 1024).ok).toBe(false);
    expect(parseRelayFrame(JSON.stringify({ type: 'bogus' }), 1024).ok).toBe(false);
    const reserved = {
      type: 'reserved',
      reservation: {
        relay: 'r.test',
        server: 'n.test',
        expires_at: NOW,
        limits: { max_body_bytes: 1, bytes_per_second: 1, requests_per_second: 1, max_in_flight: 1 },
      },
    };
    expect(parseRelayFrame(JSON.stringify(reserved), 1024).ok).toBe(true);
    expect(parseRelayFrame(JSON.stringify({ ...reserved, reservation: { ...reserved.reservation, limits: {} } }), 1024).ok).toBe(false);
    expect(parseRelayFrame(JSON.stringify({ type: 'error', code: 'X'.repeat(500), reason: 'r' }), 1024)).toMatchObject({
      ok: true,
      value: { code: 'X'.repeat(64) },
    });
  });
});

describe('relay limits', () => {
  it('counts reservations per IP and per network, and frees them', () => {
    const ledger = new ReservationLedger({ max_reservations: 4, reservations_per_ip: 2, reservations_per_network: 3 });
    ledger.add('a#1', '203.0.113.1');
    ledger.add('b#2', '203.0.113.1');
    expect(ledger.check('203.0.113.1')).toMatchObject({ code: 'PARLEY_RELAY_IP_LIMIT' });
    // Re-reserving replaces one's own slot.
    expect(ledger.check('203.0.113.1', 'a#1')).toBeUndefined();
    ledger.add('c#3', '203.0.7.9');
    expect(ledger.check('203.0.55.5')).toMatchObject({ code: 'PARLEY_RELAY_NETWORK_LIMIT' });
    expect(ledger.check('198.51.100.1')).toBeUndefined();
    ledger.add('d#4', '198.51.100.1');
    expect(ledger.check('192.0.2.1')).toMatchObject({ code: 'PARLEY_RELAY_FULL' });
    ledger.remove('a#1');
    ledger.remove('a#1');
    expect(ledger.size).toBe(3);
    expect(ledger.check('203.0.113.1')).toBeUndefined();
    // IPv6: one /64 is one address, one /32 one network.
    const v6 = new ReservationLedger({ max_reservations: 10, reservations_per_ip: 1, reservations_per_network: 2 });
    v6.add('x', '2001:db8:1:1::1');
    expect(v6.check('2001:db8:1:1::2')).toMatchObject({ code: 'PARLEY_RELAY_IP_LIMIT' });
    v6.add('y', '2001:db8:2::1');
    expect(v6.check('2001:db8:3::1')).toMatchObject({ code: 'PARLEY_RELAY_NETWORK_LIMIT' });
  });

  it('a token bucket refills at its rate and lets one oversize item through only when full', () => {
    const bucket = new TokenBucket(10, 20, 0);
    for (let i = 0; i < 20; i++) expect(bucket.take(1, 0)).toBe(true);
    expect(bucket.take(1, 0)).toBe(false);
    expect(bucket.take(1, 100)).toBe(true);
    expect(bucket.take(1, 100)).toBe(false);
    const bytes = new TokenBucket(100, 100, 0);
    expect(bytes.take(1000, 0)).toBe(true);
    expect(bytes.take(1, 5_000)).toBe(false);
    expect(bytes.take(1, 11_000)).toBe(true);
  });
});
