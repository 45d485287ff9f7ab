import { generateKeyPairSync, sign } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { canonicalJson } from '@parley/federation/canonical';
import type { RoomsApi } from '@parley/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Federation, type FedServer, startFederation } from './support/federation.js';
import { until } from './support/net.js';

// Issue 15: a domain block stops inbound AND outbound federation with that server, and
// undoing it (one step, also for a subscribed signed blocklist) restores both.
describe('admin: domain blocks and signed blocklists', () => {
  let fed: Federation;
  let hs1: FedServer;
  let hs2: FedServer;
  let adminToken: string;
  let alice: RoomsApi;
  let bob: RoomsApi;
  let roomId: string;
  let lists: Server;
  let listUrl: string;
  let served = '';

  const call = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${hs1.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${adminToken}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    return { status: res.status, body: (await res.json()) as Record<string, any> };
  };
  /** A signed request from hs2 to hs1's federation listener: its status (a FederationError's, or 200). */
  const inboundStatus = async () => {
    try {
      await hs2.running.federation?.context.client.request({
        destination: 'hs1.test',
        method: 'GET',
        path: '/federation/v1/directory/rooms',
      });
      return 200;
    } catch (err) {
      return (err as { status?: number }).status ?? -1;
    }
  };
  const bobSees = async (text: string) => (await bob.messages(roomId, { limit: 20 })).chunk.some((e) => e.content.body === text);

  beforeAll(async () => {
    fed = await startFederation(['hs1.test', 'hs2.test']);
    hs1 = fed.byName('hs1.test');
    hs2 = fed.byName('hs2.test');
    const root = await hs1.user('root');
    await hs1.running.services.users.setAdmin(root.userId, true);
    adminToken = root.client.session?.access_token as string;
    alice = (await hs1.user('alice')).rooms;
    bob = (await hs2.user('bob')).rooms;
    ({ room_id: roomId } = await alice.create({ visibility: 'public', name: 'Across' }));
    await bob.join(roomId);
    await alice.sendText(roomId, 'before the block');
    await until(() => bobSees('before the block'));
    lists = createServer((_req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(served);
    });
    await new Promise<void>((resolve) => lists.listen(0, '127.0.0.1', resolve));
    listUrl = `http://127.0.0.1:${(lists.address() as AddressInfo).port}/blocklist.json`;
  });
  afterAll(async () => {
    await new Promise((resolve) => lists?.close(resolve));
    await fed?.close();
  });

  it('a block refuses hs2 inbound (403) and never dials it outbound; undo delivers what waited', async () => {
    expect(await inboundStatus()).toBe(200);
    const added = await call('POST', '/api/v1/admin/federation/policies', { domain: 'hs2.test', kind: 'block', reason: 'spam wave' });
    expect(added.status).toBe(201);

    // Inbound: hs2's signed requests are refused before its key is even fetched.
    expect(await inboundStatus()).toBe(403);
    // Outbound: hs1 does not deliver to hs2; the event waits in the outbox.
    await alice.sendText(roomId, 'during the block');
    await until(async () => {
      const d = (await call('GET', '/api/v1/admin/federation/destinations')).body.destinations.find(
        (x: { name: string }) => x.name === 'hs2.test',
      );
      return d?.blocked === true && /blocked/.test(d.last_error ?? '') && d.pending.events > 0;
    });
    await expect(
      hs1.running.federation?.context.client.request({
        destination: 'hs2.test',
        method: 'GET',
        path: '/federation/v1/keys',
        signed: false,
      }),
    ).rejects.toThrow(/blocked/);
    expect(await bobSees('during the block')).toBe(false);

    // Undo in one step: both directions come back, and the waiting event is delivered.
    const undone = await call('POST', `/api/v1/admin/federation/policies/undo/${added.body.batch}`);
    expect(undone.body.removed).toBe(1);
    expect(await inboundStatus()).toBe(200);
    await until(() => bobSees('during the block'));
    const actions = (await call('GET', '/api/v1/admin/audit?action=federation.')).body.entries.map((e: { action: string }) => e.action);
    expect(actions.slice(0, 2)).toEqual(['federation.undo', 'federation.block']);
  });

  it('an allow for a domain wins over a block of it; import and export round-trip', async () => {
    const imported = await call('POST', '/api/v1/admin/federation/policies/import', {
      format: 'csv',
      data: 'domain,kind,reason\nhs2.test,block,"bad, very bad"\nexample.org,block,\n',
    });
    expect(imported.status).toBe(202);
    const job = imported.body.job.id as string;
    let result: { batch: string; added: number } | undefined;
    await until(async () => {
      const j = (await call('GET', `/api/v1/admin/jobs/${job}`)).body;
      result = j.result;
      return j.state === 'done';
    });
    expect(result?.added).toBe(2);
    expect(await inboundStatus()).toBe(403);
    const allow = await call('POST', '/api/v1/admin/federation/policies', { domain: 'hs2.test', kind: 'allow' });
    expect(await inboundStatus()).toBe(200);
    await call('DELETE', `/api/v1/admin/federation/policies/${allow.body.id}`);
    expect(await inboundStatus()).toBe(403);
    const csv = await fetch(`${hs1.url}/api/v1/admin/federation/policies/export?format=csv`, {
      headers: { authorization: `Bearer ${adminToken}` },
    });
    expect(await csv.text()).toContain('hs2.test,block,"bad, very bad"');
    await call('POST', `/api/v1/admin/federation/policies/undo/${result?.batch}`);
    expect(await inboundStatus()).toBe(200);
  });

  it('a subscribed blocklist applies only when its signature verifies, and unsubscribing undoes it', async () => {
    const { publicKey, privateKey } = generateKeyPairSync('ed25519');
    const key = publicKey.export({ format: 'jwk' }).x as string;
    const signed = (doc: Record<string, unknown>) => {
      const signature = sign(null, Buffer.from(canonicalJson(doc)), privateKey).toString('base64url');
      return JSON.stringify({ ...doc, signature });
    };
    const doc = { name: 'Shared list', issued_ts: 1000, entries: [{ domain: 'hs2.test', reason: 'shared' }] };

    // A tampered list (entry added after signing) is refused, naming why.
    served = JSON.stringify({ ...JSON.parse(signed(doc)), entries: [...doc.entries, { domain: 'victim.test' }] });
    const tampered = await call('POST', '/api/v1/admin/federation/subscriptions', { url: listUrl, public_key: key });
    expect(tampered.status).toBe(400);
    expect(tampered.body.error).toMatchObject({ field: 'url' });
    expect(tampered.body.error.message).toMatch(/signature/);
    // Signed by another key: refused too.
    const other = generateKeyPairSync('ed25519').publicKey.export({ format: 'jwk' }).x as string;
    served = signed(doc);
    expect((await call('POST', '/api/v1/admin/federation/subscriptions', { url: listUrl, public_key: other })).status).toBe(400);

    const sub = await call('POST', '/api/v1/admin/federation/subscriptions', { url: listUrl, public_key: key });
    expect(sub.status).toBe(201);
    expect(sub.body).toMatchObject({ entries: 1, name: 'Shared list', last_error: null });
    expect(await inboundStatus()).toBe(403);
    // An older list (a replay) is refused on refresh and the current entries stay.
    served = signed({ ...doc, issued_ts: 10, entries: [] });
    expect((await call('POST', `/api/v1/admin/federation/subscriptions/${sub.body.id}/refresh`)).status).toBe(400);
    expect(await inboundStatus()).toBe(403);

    await alice.sendText(roomId, 'while subscribed');
    expect((await call('DELETE', `/api/v1/admin/federation/subscriptions/${sub.body.id}`)).status).toBe(200);
    expect(await inboundStatus()).toBe(200);
    await until(() => bobSees('while subscribed'));
    const actions = (await call('GET', '/api/v1/admin/audit?action=federation.')).body.entries.map((e: { action: string }) => e.action);
    expect(actions.slice(0, 2)).toEqual(['federation.unsubscribe', 'federation.subscribe']);
  });
  it('quarantining a cached copy of remote media serves it to nobody here, without fetching it again', async () => {
    const carol = await hs2.user('carol');
    const up = await fetch(`${hs2.url}/api/v1/media`, {
      method: 'POST',
      headers: { authorization: `Bearer ${carol.client.session?.access_token}`, 'content-type': 'text/plain' },
      body: 'remote bytes',
    });
    const { media_id } = (await up.json()) as { media_id: string };
    const download = () => fetch(`${hs1.url}/api/v1/media/hs2.test/${media_id}`, { headers: { authorization: `Bearer ${adminToken}` } });
    expect((await download()).status).toBe(200);
    const listed = await call('GET', '/api/v1/admin/media');
    const copy = listed.body.media.find((m: { origin: string | null }) => m.origin === 'hs2.test');
    expect(copy).toBeDefined();
    expect((await call('PUT', `/api/v1/admin/media/${copy.media_id}/quarantine`, { quarantined: true })).status).toBe(200);
    expect((await download()).status).toBe(404);
    expect((await call('PUT', `/api/v1/admin/media/${copy.media_id}/quarantine`, { quarantined: false })).status).toBe(200);
    expect((await download()).status).toBe(200);
  });
});
