import https from 'node:https';
import { canonicalJson } from '@parley/federation/canonical';
import { buildRequestEnvelope, decodeBody, type RelayRequestEnvelope, relayForwardPath } from '@parley/federation/relay';
import { type FederationClient, signRequest } from '@parley/federation/transport';
import type { ParleyClient, RoomsApi } from '@parley/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Federation, type FedServer, startFederation } from './support/federation.js';
import { freePort, until } from './support/net.js';
import { heldOn, messageBodies, pendingEvents } from './support/relay.js';
import { TcpGate } from './support/tcp-gate.js';

type Person = { client: ParleyClient; rooms: RoomsApi; userId: string };

const bodies = messageBodies;

/** PUT straight to a federation listener (its self-signed certificate accepted), as any replayer could. */
function putInsecure(url: string, authorization: string, body: Buffer): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      url,
      {
        method: 'PUT',
        rejectUnauthorized: false,
        headers: { authorization, 'content-type': 'application/json', 'content-length': body.length },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

const clientOf = (s: FedServer): FederationClient => s.running.federation?.context.client as FederationClient;

/** What a refused federation request answered: its status and errcode. */
async function refusal(p: Promise<unknown>): Promise<{ status?: number; code?: string }> {
  try {
    await p;
  } catch (err) {
    const e = err as { status?: number; body?: { error?: { code?: string } } };
    return { status: e.status, code: e.body?.error?.code };
  }
  return {};
}

/**
 * A hostile relay, over real TLS on loopback: w.test is a relay whose own path to c.test is
 * closed, so it takes a.test's transactions and never delivers them (withholding). The test
 * plays a relay that replays and alters what w.test holds (sending it on with forwardSigned,
 * as a relay delivers, through a.test's client once the gate is open), and a.test floods
 * w.test. a.test's path to c.test goes through a TCP gate the test closes and opens.
 */
describe('relay fallback: hostile relays', () => {
  let fed: Federation;
  let a: FedServer;
  let w: FedServer;
  let c: FedServer;
  let gate: TcpGate;
  let alice: Person;
  let carol: Person;
  let roomId: string;
  let held: RelayRequestEnvelope;

  const heldRows = () => heldOn(w, 'a.test', 'c.test');
  const pendingForC = () => pendingEvents(a, 'c.test');

  beforeAll(async () => {
    const gatePort = await freePort();
    const closedPort = await freePort();
    let cPort = 0;
    fed = await startFederation(['a.test', 'w.test', 'c.test'], {
      overrides: (name, statics) => {
        cPort = Number(statics['c.test']?.split(':')[1]);
        if (name === 'a.test')
          return {
            federation: { static_servers: { ...statics, 'c.test': `127.0.0.1:${gatePort}` } },
            relay: { anchors: ['w.test'], fallback_after_ms: 1_000, fallback_poll_ms: 1_000, fallback_direct_retry_max_ms: 3_000 },
          };
        if (name === 'w.test')
          return {
            federation: { static_servers: { ...statics, 'c.test': `127.0.0.1:${closedPort}` } },
            relay: { enabled: true, hold_per_origin: 5, hold_offers_per_origin: { burst: 40, per_minute: 60 } },
          };
        return {};
      },
    });
    [a, w, c] = fed.servers as [FedServer, FedServer, FedServer];
    gate = new TcpGate(gatePort, cPort);
    await gate.open();
    alice = await a.user('alice');
    carol = await c.user('carol');
    ({ room_id: roomId } = await alice.rooms.create({ visibility: 'public', name: 'Hostile relay' }));
    await carol.rooms.join(roomId);
    await alice.rooms.sendText(roomId, 'before');
    await until(async () => (await bodies(carol.rooms, roomId)).includes('before'), 30_000);
    // w.test learns a.test's keys (it checks the origin's signature on what it takes).
  }, 120_000);

  afterAll(async () => {
    await gate?.close();
    await fed?.close();
  });

  it('withholds: the relay takes the transaction and keeps it; a.test does not count it delivered and delivers it directly when the path heals', async () => {
    await gate.close();
    for (let i = 0; i < 3; i++) await alice.rooms.sendText(roomId, `withheld ${i}`);
    await until(async () => (await heldRows()).length > 0, 60_000);
    const rows = await heldRows();
    expect(rows.every((r) => r.delivered_ts === null)).toBe(true);
    held = rows[0]?.envelope as RelayRequestEnvelope;
    // Taken by a relay is not delivered: a.test still has the rows pending, carol has nothing.
    expect(await pendingForC()).toBeGreaterThanOrEqual(3);
    expect((await bodies(carol.rooms, roomId)).some((b) => b.startsWith('withheld'))).toBe(false);
    await gate.open();
    await until(async () => (await pendingForC()) === 0, 60_000);
    const onC = await bodies(carol.rooms, roomId);
    for (let i = 0; i < 3; i++) expect(onC.filter((b) => b === `withheld ${i}`)).toHaveLength(1);
  }, 120_000);

  it('replays: the held transaction brought again (by the relay, or straight to c.test) is applied once', async () => {
    const before = await bodies(carol.rooms, roomId);
    const send = (relayed: boolean) =>
      relayed
        ? clientOf(a).forwardSigned({
            destination: 'c.test',
            method: held.method,
            path: held.uri,
            authorization: held.authorization as string,
            body: decodeBody(held.body),
          })
        : putInsecure(`${c.running.federation?.url}${held.uri}`, held.authorization as string, decodeBody(held.body));
    for (const relayed of [true, true, false]) {
      const res = await send(relayed);
      expect(res.status).toBe(200);
      expect((res.body as { duplicate?: boolean }).duplicate).toBe(true);
    }
    // The same events in a new transaction (another txn ID) are deduplicated by event ID.
    const content = JSON.parse(decodeBody(held.body).toString('utf8')) as { events: unknown[]; edus: unknown[] };
    await clientOf(a).request({ destination: 'c.test', method: 'PUT', path: '/federation/v1/send/replayed-elsewhere', body: content });
    expect(await bodies(carol.rooms, roomId)).toEqual(before);
  }, 60_000);

  it('alters: c.test refuses a changed body or a re-aimed request, and so does the relay before holding it', async () => {
    const text = decodeBody(held.body).toString('utf8');
    expect(text).toContain('withheld 0');
    const altered = Buffer.from(text.replace('withheld 0', 'withheld X'));
    const toC = await refusal(
      clientOf(a).forwardSigned({
        destination: 'c.test',
        method: 'PUT',
        path: held.uri,
        authorization: held.authorization as string,
        body: altered,
      }),
    );
    expect(toC).toEqual({ status: 401, code: 'PARLEY_FED_BAD_SIGNATURE' });
    const reaimed = await refusal(
      clientOf(a).forwardSigned({
        destination: 'c.test',
        method: 'PUT',
        path: '/federation/v1/send/another-txn',
        authorization: held.authorization as string,
        body: decodeBody(held.body),
      }),
    );
    expect(reaimed).toEqual({ status: 401, code: 'PARLEY_FED_BAD_SIGNATURE' });
    // Offered to a relay altered, the relay's own check refuses it.
    const envelope = { ...held, uri: '/federation/v1/send/altered', body: altered.toString('base64url') };
    const atRelay = await refusal(
      clientOf(a).request({ destination: 'w.test', method: 'POST', path: relayForwardPath('c.test'), body: envelope }),
    );
    expect(atRelay.status).toBe(401);
    expect((await bodies(carol.rooms, roomId)).some((b) => b.includes('withheld X'))).toBe(false);
  }, 60_000);

  it('floods: an origin offering too much gets 429 PARLEY_RELAY_QUOTA, then 429 PARLEY_RATE_LIMITED, and an oversize one 413', async () => {
    const identity = a.running.services.identity;
    const offer = (txnId: string, content: unknown) => {
      const uri = `/federation/v1/send/${txnId}`;
      const authorization = signRequest({ method: 'PUT', uri, origin: 'a.test', destination: 'c.test', content, ts: Date.now() }, identity);
      const envelope = buildRequestEnvelope({
        destination: 'c.test',
        method: 'PUT',
        uri,
        authorization,
        body: Buffer.from(canonicalJson(content, 'body')),
      });
      return refusal(clientOf(a).request({ destination: 'w.test', method: 'POST', path: relayForwardPath('c.test'), body: envelope }));
    };
    const outcomes: Array<{ status?: number; code?: string }> = [];
    for (let i = 0; i < 60; i++) outcomes.push(await offer(`flood-${i}`, { events: [], edus: [] }));
    const codes = outcomes.map((o) => o.code ?? 'accepted');
    expect(codes).toContain('accepted');
    expect(codes).toContain('PARLEY_RELAY_QUOTA');
    expect(codes).toContain('PARLEY_RATE_LIMITED');
    // Accepted first, then the quota, then the rate: each refusal a 429 with its own code.
    expect(codes.indexOf('PARLEY_RELAY_QUOTA')).toBeGreaterThan(codes.lastIndexOf('accepted'));
    for (const o of outcomes.filter((x) => x.code)) expect(o.status).toBe(429);
    const undelivered = (await heldRows()).filter((r) => r.delivered_ts === null);
    expect(undelivered.length).toBeLessThanOrEqual(5);
    const big = await offer('too-big', { events: [], edus: [{ type: 'x', content: { pad: 'x'.repeat(9 * 1024 * 1024) } }] });
    expect(big.status).toBe(413);
  }, 120_000);
});
