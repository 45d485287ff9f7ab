import type { KeyObject } from 'node:crypto';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { buildKeyDocument, generateSigningKey, publicKeyB64u } from '@parley/federation/keys';
import { fingerprintOfPem, generateSelfSignedCertificate } from '@parley/federation/tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Federation, startFederation } from './support/federation.js';

/**
 * security: L5 across restarts. The key store's cache lives in memory; what it verified is
 * also kept in `server_key_documents`, so after a restart a key ID still holds the public key
 * first accepted for it, and a server answering with another key under it is refused.
 */
describe('security: L5 a known key survives a restart and a changed one is still refused', () => {
  let federation: Federation;
  let impostor: https.Server | undefined;
  // What the impostor at hs2's address answers, and its certificate: set by the tests.
  let served: unknown;
  let impostorCert = '';
  let realKey: { keyId: string; publicKey: KeyObject } | undefined;

  beforeAll(async () => {
    federation = await startFederation(['hs1.test', 'hs2.test']);
  });
  afterAll(async () => {
    await new Promise<void>((resolve) => (impostor ? impostor.close(() => resolve()) : resolve()));
    await federation?.close();
  });

  it('keeps what it verified, and refuses an impostor after the restart', async () => {
    const hs1 = federation.byName('hs1.test');
    const hs2 = federation.byName('hs2.test');
    const real = hs2.running.services.identity;
    realKey = real;
    const store = () => hs1.running.federation?.context.keyStore;
    expect((await store()?.getKey('hs2.test', real.keyId))?.equals(real.publicKey)).toBe(true);
    const rows = await hs1.running.services.db('server_key_documents').where({ server_name: 'hs2.test' }).count({ n: '*' });
    expect(Number(rows[0]?.n)).toBe(1);

    // hs2's address now answers with another key under hs2's key ID, and hs1 restarts.
    const port = Number(new URL(hs2.running.federation?.url as string).port);
    await hs2.stop();
    const cert = await generateSelfSignedCertificate('hs2.test');
    const forged = buildKeyDocument({
      serverName: 'hs2.test',
      current: { ...generateSigningKey(), keyId: real.keyId },
      tlsFingerprints: [fingerprintOfPem(cert.certPem)],
      validForMs: 86_400_000,
      now: Date.now(),
    });
    served = forged;
    impostor = https.createServer({ cert: cert.certPem, key: cert.keyPem }, (req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(served));
    });
    await new Promise<void>((resolve) => impostor?.listen(port, '127.0.0.1', resolve));
    await hs1.stop();
    await hs1.start();

    // A fetch happens (a fresher document is asked for) and finds the impostor's document.
    const kept = await store()?.getDocument('hs2.test', { minimumValidUntilTs: forged.valid_until_ts });
    expect(kept?.verify_keys[`ed25519:${real.keyId}`]?.key).toBe(publicKeyB64u(real.publicKey));
    expect(store()?.lastFailure('hs2.test')).toMatch(/another public key under ed25519:/);
    expect(store()?.keyRing({ at: Date.now() })('hs2.test', real.keyId)?.equals(real.publicKey)).toBe(true);
    const metrics = await (await fetch(`${hs1.url}/metrics`)).text();
    expect(metrics).toMatch(/parley_federation_key_events_total\{type="conflict"\} 1/);
    expect((impostor.address() as AddressInfo).port).toBe(port);
    impostorCert = cert.certPem;
  });

  it('without notaries, refuses a new key ID offered over a certificate not pinned for the server', async () => {
    const hs1 = federation.byName('hs1.test');
    const real = realKey as NonNullable<typeof realKey>;
    // The impostor now "rotates": a key under a new ID, its own certificate listed.
    const fresh = generateSigningKey();
    served = buildKeyDocument({
      serverName: 'hs2.test',
      current: fresh,
      tlsFingerprints: [fingerprintOfPem(impostorCert)],
      validForMs: 86_400_000,
      now: Date.now(),
    });
    await hs1.stop();
    await hs1.start();
    const store = hs1.running.federation?.context.keyStore;
    expect(await store?.getKey('hs2.test', fresh.keyId)).toBeUndefined();
    expect(store?.lastFailure('hs2.test')).toMatch(/offers a new key \(ed25519:\w+\) over a certificate not pinned for it/);
    expect((await store?.getKey('hs2.test', real.keyId))?.equals(real.publicKey)).toBe(true);
  });
});
