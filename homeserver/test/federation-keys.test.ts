import https from 'node:https';
import { generateSigningKey } from '@parley/federation/keys';
import { AddressPolicy, FederationClient, isFederationError, signRequest } from '@parley/federation/transport';
import { ParleyClient } from '@parley/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OutboxRepository } from '../src/repositories/outbox.js';
import { startFederatedPair } from './support/federated-pair.js';
import type { TestServer } from './support/server.js';

/** Two homeservers over real TLS on loopback: keys, signed requests, transactions. */
describe('federation: server keys, signed HTTPS, transactions', () => {
  let a: TestServer;
  let b: TestServer;
  let portB: number;

  beforeAll(async () => {
    // evil.test points at hs2's listener: the key document found there names hs2.test.
    const pair = await startFederatedPair((ports) => ({ 'evil.test': `127.0.0.1:${ports.b}` }));
    ({ a, b } = pair);
    portB = pair.ports.b;
    const bob = new ParleyClient({ baseUrl: b.url });
    await bob.register({ username: 'bob', password: 'bob password' });
    await bob.updateProfile('@bob:hs2.test', { displayname: 'Bob of B' });
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
  });

  const fedA = () => a.federation?.context as NonNullable<TestServer['federation']>['context'];

  it('publishes a self-signed key document naming its TLS certificate', async () => {
    const doc = b.federation?.context.keyDocument();
    expect(doc?.server_name).toBe('hs2.test');
    expect(doc?.tls_fingerprints).toEqual([{ sha256: b.federation?.context.tls.fingerprint }]);
  });

  it('fetches a peer’s keys on first contact and pins its certificate from then on', async () => {
    const key = await fedA().keyStore.getKey('hs2.test', b.services.identity.keyId);
    expect(key?.export({ format: 'der', type: 'spki' }).equals(b.services.identity.publicKey.export({ format: 'der', type: 'spki' }))).toBe(
      true,
    );
    expect(fedA().keyStore.tlsPins('hs2.test')).toEqual([b.federation?.context.tls.fingerprint]);
  });

  it('makes signed requests the peer verifies', async () => {
    const res = await fedA().client.request({
      destination: 'hs2.test',
      method: 'GET',
      path: '/federation/v1/query/profile?user_id=%40bob%3Ahs2.test',
    });
    expect(res.body).toEqual({ user_id: '@bob:hs2.test', displayname: 'Bob of B', avatar_url: null });
  });

  it('refuses a key document that names another server than the one asked', async () => {
    expect(await fedA().keyStore.getKey('evil.test', b.services.identity.keyId)).toBeUndefined();
  });

  describe('refuses bad request authentication with a clear 401', () => {
    const url = () => `${b.federation?.url}/federation/v1/query/profile?user_id=%40bob%3Ahs2.test`;
    // The test is the client here: it does not pin, it only wants to reach the listener.
    const call = (authorization: string | null) =>
      new Promise<{ status: number; body: { error: { code: string } } }>((resolve, reject) => {
        const req = https.get(url(), { rejectUnauthorized: false, headers: authorization ? { authorization } : {} }, (res) => {
          let text = '';
          res.on('data', (d) => {
            text += d;
          });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
        });
        req.on('error', reject);
      });
    const path = '/federation/v1/query/profile?user_id=%40bob%3Ahs2.test';

    it.each([
      ['no header', null, 'PARLEY_FED_BAD_AUTH'],
      ['garbage', 'Parley nonsense', 'PARLEY_FED_BAD_AUTH'],
      ['another scheme', 'Bearer pat_x', 'PARLEY_FED_BAD_AUTH'],
    ])('%s', async (_name, header, code) => {
      const r = await call(header);
      expect(r.status).toBe(401);
      expect(r.body.error.code).toBe(code);
    });

    it('wrong destination, unknown key, forged signature', async () => {
      const wrongDest = signRequest({ method: 'GET', uri: path, origin: 'hs1.test', destination: 'hs3.test' }, a.services.identity);
      expect((await call(wrongDest)).body.error.code).toBe('PARLEY_FED_WRONG_DESTINATION');
      const stranger = generateSigningKey();
      const unknownKey = signRequest({ method: 'GET', uri: path, origin: 'hs1.test', destination: 'hs2.test' }, stranger);
      expect((await call(unknownKey)).body.error.code).toBe('PARLEY_FED_UNKNOWN_KEY');
      const forged = signRequest(
        { method: 'GET', uri: path, origin: 'hs1.test', destination: 'hs2.test' },
        { ...stranger, keyId: a.services.identity.keyId },
      );
      expect((await call(forged)).body.error.code).toBe('PARLEY_FED_BAD_SIGNATURE');
    });
  });

  it('refuses a destination that resolves to a private address unless allowlisted', async () => {
    const strict = new FederationClient({
      serverName: 'hs1.test',
      signingKey: a.services.identity,
      policy: new AddressPolicy({ allow: [] }),
      staticServers: { 'hs2.test': `127.0.0.1:${portB}` },
    });
    try {
      await strict.request({ destination: 'hs2.test', method: 'GET', path: '/federation/v1/keys', signed: false, tls: 'any' });
      expect.unreachable('a loopback destination must be refused');
    } catch (err) {
      expect(isFederationError(err) && err.kind).toBe('ssrf');
    } finally {
      await strict.close();
    }
  });

  it('deduplicates replayed transactions and refuses oversized ones', async () => {
    const send = (txnId: string, events: unknown[]) =>
      fedA().client.request({ destination: 'hs2.test', method: 'PUT', path: `/federation/v1/send/${txnId}`, body: { events, edus: [] } });
    expect((await send('t-1', [])).body).toEqual({ events: {}, duplicate: false });
    expect((await send('t-1', [])).body).toEqual({ events: {}, duplicate: true });
    const tooMany = Array.from({ length: 101 }, () => ({}));
    await expect(send('t-2', tooMany)).rejects.toMatchObject({ kind: 'http', status: 413 });
  });

  it('delivers outbox rows to the peer over TLS (durable delivery end to end)', async () => {
    const outbox = new OutboxRepository(a.services.db);
    await a.services.db.transaction((trx) => outbox.enqueue(['hs2.test'], 'edu', { type: 'test.ping' }, Date.now(), 60_000, trx));
    a.federation?.delivery.notify(['hs2.test']);
    for (let i = 0; i < 200; i++) {
      if ((await outbox.depth()).length === 0) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(await outbox.depth()).toEqual([]);
    expect((await outbox.destination('hs2.test'))?.state).toBe('up');
  });
});
