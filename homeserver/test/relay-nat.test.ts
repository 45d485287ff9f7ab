import { downloadMedia, uploadMedia } from '@parley/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { opaque } from './support/e2e.js';
import { type Federation, type FedServer, startFederation } from './support/federation.js';
import { until } from './support/net.js';
import { bodies, converged, login, type Person } from './support/room-views.js';

/**
 * A server with no inbound port (n.test: federation.listen off) reserves on the anchor relay
 * r.test and federates fully with p.test and q.test through it, over real TLS on loopback.
 * p.test's static map says n.test is reached through r.test (`relay:r.test`); q.test has no
 * address for n.test at all and learns the relay from the `Parley-Relay` header of n.test's
 * requests, then from n.test's own key document. Every request either sends n.test is carried
 * by r.test over n.test's outbound WebSocket.
 */
describe('anchor relay: a server behind NAT federates through a relay', () => {
  let fed: Federation;
  let r: FedServer;
  let n: FedServer;
  let p: FedServer;
  let q: FedServer;
  let alice: Person;
  let bob: Person;
  let carol: Person;

  beforeAll(async () => {
    fed = await startFederation(['r.test', 'n.test', 'p.test', 'q.test'], {
      overrides: (name, statics) => {
        if (name === 'r.test') return { relay: { enabled: true } };
        if (name === 'n.test') return { federation: { listen: false }, relay: { use: 'r.test' } };
        // p.test is told n.test is behind r.test; q.test is not, and learns it from n.test's requests.
        if (name === 'p.test') return { federation: { static_servers: { ...statics, 'n.test': 'relay:r.test' } } };
        return {};
      },
    });
    [r, n, p, q] = fed.servers as [FedServer, FedServer, FedServer, FedServer];
    await until(() => n.running.federation?.relay.reserver?.state().status === 'reserved', 30_000).catch((err) => {
      throw new Error(`no reservation: ${JSON.stringify(n.running.federation?.relay.reserver?.state())}`, { cause: err });
    });
    alice = await n.user('alice');
    bob = await p.user('bob');
    carol = await q.user('carol');
  }, 180_000);
  afterAll(async () => fed?.close());

  it('n.test has no federation port and holds a reservation the relay and its own key document show', async () => {
    expect(n.running.federation?.port).toBe(0);
    const doc = n.running.federation?.context.keyDocument();
    expect(doc?.relay?.via).toBe('r.test');
    expect(doc?.relay?.until).toBeGreaterThan(Date.now());
    expect(r.running.federation?.context.keyDocument().capabilities?.relay?.max_reservations).toBeGreaterThan(0);
    await r.running.services.accounts.createUser('root', 'root password', true);
    const root = await login(r, 'root');
    const view = await root.client.request<{ relay: { reservations: Array<{ server: string }> } }>('GET', '/api/v1/admin/relay');
    expect(view.relay.reservations.map((x) => x.server)).toEqual(['n.test']);
    const metrics = await (await fetch(`${r.url}/metrics`)).text();
    expect(metrics).toMatch(/parley_relay_reservations 1/);
  });

  it('a room hosted behind NAT: invite, joins and messages both ways with two other servers', async () => {
    const { room_id: roomId } = await alice.rooms.create({ visibility: 'private', name: 'Behind NAT' });
    await alice.rooms.invite(roomId, bob.userId);
    await alice.rooms.invite(roomId, carol.userId);
    // The invites reach p and q; their joins go to the host n through the relay.
    await until(async () => {
      try {
        await bob.rooms.join(roomId);
        return true;
      } catch {
        return false;
      }
    }, 30_000);
    await carol.rooms.join(roomId);
    for (const person of [alice, bob, carol]) {
      await until(async () => (await person.rooms.members(roomId)).filter((m) => m.membership === 'join').length === 3, 30_000);
    }
    await alice.rooms.sendText(roomId, 'from n');
    await bob.rooms.sendText(roomId, 'from p');
    await carol.rooms.sendText(roomId, 'from q');
    await converged([alice, bob, carol], roomId);
    for (const person of [alice, bob, carol]) expect(await bodies(person.rooms, roomId)).toEqual(['from n', 'from p', 'from q']);
  }, 120_000);

  it('a room hosted on p.test: n.test joins and its user reads and writes', async () => {
    const { room_id: roomId } = await bob.rooms.create({ visibility: 'public', name: 'On p' });
    await alice.rooms.join(roomId);
    await carol.rooms.join(roomId);
    await bob.rooms.sendText(roomId, 'bob on p');
    await alice.rooms.sendText(roomId, 'alice behind NAT');
    await converged([alice, bob, carol], roomId);
    expect(await bodies(alice.rooms, roomId)).toEqual(['bob on p', 'alice behind NAT']);
  }, 120_000);

  it("the relay's own users talk with n.test too, over the reservation itself", async () => {
    const dave = await r.user('dave');
    const { room_id: roomId } = await alice.rooms.create({ visibility: 'public', name: 'With the relay' });
    await dave.rooms.join(roomId);
    await dave.rooms.sendText(roomId, 'dave on the relay');
    await alice.rooms.sendText(roomId, 'alice behind NAT');
    await converged([alice, dave], roomId);
    expect(await bodies(dave.rooms, roomId)).toEqual(['dave on the relay', 'alice behind NAT']);
  }, 60_000);

  it('media uploaded behind NAT is downloaded on the other servers, and the other way round', async () => {
    const fromN = new TextEncoder().encode(`attachment on n ${opaque(64)}`);
    const up = await uploadMedia(alice.client, fromN, { contentType: 'application/octet-stream', filename: 'n.bin' });
    expect(up.content_uri).toBe(`parley://n.test/${up.media_id}`);
    const viaP = await downloadMedia(bob.client, up.content_uri);
    expect(Buffer.from(viaP.data).equals(Buffer.from(fromN))).toBe(true);
    const viaQ = await downloadMedia(carol.client, up.content_uri);
    expect(Buffer.from(viaQ.data).equals(Buffer.from(fromN))).toBe(true);
    const fromP = new TextEncoder().encode(`attachment on p ${opaque(64)}`);
    const upP = await uploadMedia(bob.client, fromP, { contentType: 'application/octet-stream', filename: 'p.bin' });
    expect(Buffer.from((await downloadMedia(alice.client, upP.content_uri)).data).equals(Buffer.from(fromP))).toBe(true);
  }, 60_000);

  it("an encrypted room's commits and ciphertexts travel through the relay as opaque events", async () => {
    const { room_id: roomId } = await alice.rooms.create({ visibility: 'public', name: 'Secret behind NAT', encrypted: true });
    await bob.rooms.join(roomId);
    await carol.rooms.join(roomId);
    for (const person of [alice, bob, carol]) {
      await until(async () => (await person.rooms.members(roomId)).filter((m) => m.membership === 'join').length === 3, 30_000);
    }
    const commit = { epoch: 0, commit: opaque() };
    await alice.rooms.send(roomId, 'room.mls.commit', commit);
    const ciphertexts = [opaque(), opaque(), opaque()];
    await bob.rooms.send(roomId, 'room.encrypted', { epoch: 1, ciphertext: ciphertexts[0] });
    await alice.rooms.send(roomId, 'room.encrypted', { epoch: 1, ciphertext: ciphertexts[1] });
    await carol.rooms.send(roomId, 'room.encrypted', { epoch: 1, ciphertext: ciphertexts[2] });
    await converged([alice, bob, carol], roomId);
    for (const person of [alice, bob, carol]) {
      const events = (await person.rooms.messages(roomId, { limit: 50, dir: 'f' })).chunk;
      expect(events.filter((e) => e.type === 'room.encrypted').map((e) => e.content.ciphertext)).toEqual(ciphertexts);
      expect(events.filter((e) => e.type === 'room.mls.commit').map((e) => e.content.commit)).toEqual([commit.commit]);
    }
  }, 120_000);

  it('the relay restarts mid-conversation: n.test reconnects and queued deliveries arrive, nothing lost or doubled', async () => {
    const { room_id: roomId } = await alice.rooms.create({ visibility: 'public', name: 'Restart' });
    await bob.rooms.join(roomId);
    await carol.rooms.join(roomId);
    await bob.rooms.sendText(roomId, 'before 1');
    await alice.rooms.sendText(roomId, 'before 2');
    await converged([alice, bob, carol], roomId);
    await r.stop();
    await until(() => n.running.federation?.relay.reserver?.state().status !== 'reserved', 10_000);
    // The host is unreachable for p and q now: their users' sends wait in their outboxes.
    const queued = [];
    for (let i = 0; i < 3; i++) queued.push(await bob.rooms.sendText(roomId, `bob while relay down ${i}`));
    for (let i = 0; i < 2; i++) queued.push(await carol.rooms.sendText(roomId, `carol while relay down ${i}`));
    // n's own users go on (n dials out directly; only inbound needs the relay).
    for (let i = 0; i < 2; i++) await alice.rooms.sendText(roomId, `alice while relay down ${i}`);
    await r.start();
    await until(() => n.running.federation?.relay.reserver?.state().status === 'reserved', 60_000);
    const expected = [
      ...[0, 1, 2].map((i) => `bob while relay down ${i}`),
      ...[0, 1].map((i) => `carol while relay down ${i}`),
      ...[0, 1].map((i) => `alice while relay down ${i}`),
    ];
    await until(async () => {
      for (const person of [alice, bob, carol]) {
        const seen = await bodies(person.rooms, roomId);
        if (!expected.every((b) => seen.includes(b))) return false;
      }
      return true;
    }, 120_000);
    const ids = await converged([alice, bob, carol], roomId, 120_000);
    expect(new Set(ids).size).toBe(ids.length);
    for (const person of [alice, bob, carol]) {
      const seen = await bodies(person.rooms, roomId);
      for (const b of ['before 1', 'before 2', ...expected]) expect(seen.filter((x) => x === b)).toHaveLength(1);
    }
    expect(queued).toHaveLength(5);
  }, 240_000);

  it('all of it went through the relay: requests carried over the reservation, counted on both sides', async () => {
    expect(n.running.federation?.relay.reserver?.state().carried).toBeGreaterThan(10);
    const metrics = await (await fetch(`${r.url}/metrics`)).text();
    const forwarded = Number(/parley_relay_forwarded_requests_total (\d+)/.exec(metrics)?.[1]);
    expect(forwarded).toBeGreaterThan(0);
    expect(metrics).toMatch(/parley_relay_bytes_total\{direction="request"\} [1-9]/);
    // p learnt from n's own (self-signed) key document that n is reached through r.
    expect(p.running.federation?.context.keyStore.cachedDocument('n.test')?.relay?.via).toBe('r.test');
    expect(q.running.federation?.context.keyStore.cachedDocument('n.test')?.relay?.via).toBe('r.test');
  });
});
