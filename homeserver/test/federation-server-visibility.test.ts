import { verifyChain } from '@parley/federation/chain';
import { keyRingOf } from '@parley/federation/keys';
import { authorize } from '@parley/federation/room';
import type { RoomEvent, SeqRecord } from '@parley/schemas';
import { RoomsApi } from '@parley/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RoomVerifier } from '../src/services/room-verify.js';
import { type Federation, type FedServer, startFederation } from './support/federation.js';
import { type HostileServer, startWithHostile } from './support/hostile-server.js';
import { until } from './support/net.js';
import type { TestServer } from './support/server.js';

type Entry = { event: RoomEvent; record: SeqRecord };

/**
 * History visibility applied to servers (issue 10, L7): a real host answers a joining server
 * (the harness, acting as an honest participant here) with the whole chain, but events that
 * none of that server's users may see under the room's history visibility come redacted.
 * The chain still verifies, state always comes whole, and what is visible comes whole.
 */
describe('federation: history visibility for servers', () => {
  let hs: TestServer;
  let peer: HostileServer;
  let alice: RoomsApi;

  const ring = () =>
    keyRingOf({
      'hs1.test': { [hs.services.identity.keyId]: hs.services.identity.publicKey },
      [peer.name]: { [peer.key.keyId]: peer.key.publicKey },
    });
  const join = async (roomId: string) => {
    const event = peer.signFor(roomId, 'room.member', { membership: 'join', displayname: 'M' }, peer.user);
    return (
      (await peer.request('hs1.test', 'POST', `/federation/v1/rooms/${encodeURIComponent(roomId)}/join`, { event })) as { entries: Entry[] }
    ).entries;
  };
  const bodies = (entries: Entry[]) => entries.filter((e) => e.event.type === 'room.message').map((e) => e.event.content.body ?? null);

  beforeAll(async () => {
    ({ hostile: peer, hs } = await startWithHostile('peer.test', 'hs1.test'));
    const client = hs.client();
    await client.register({ username: 'alice', password: 'alice password' });
    alice = new RoomsApi(client);
  }, 60_000);
  afterAll(async () => {
    await peer?.close();
    await hs?.close();
  });

  it('security: L7 a server joining a joined-only room gets earlier messages redacted; the chain still verifies', async () => {
    const { room_id } = await alice.create({ visibility: 'public', history_visibility: 'joined', name: 'Secret plans' });
    await alice.sendText(room_id, 'before anyone from peer.test joined');
    const entries = await join(room_id);
    expect(bodies(entries)).toEqual([null]);
    // State is whole: the name is there, and the redacted message keeps its signatures and hashes.
    expect(entries.find((e) => e.event.type === 'room.name')?.event.content.name).toBe('Secret plans');
    const verdict = verifyChain(entries, ring(), authorize, { roomId: room_id });
    expect(verdict).toMatchObject({ ok: true });
    // Backfill answers the same way; what is sent after the join comes whole.
    await alice.sendText(room_id, 'after the join');
    const page = (await peer.request(
      'hs1.test',
      'GET',
      `/federation/v1/rooms/${encodeURIComponent(room_id)}/events?from_seq=1&limit=100`,
    )) as {
      entries: Entry[];
    };
    expect(bodies(page.entries)).toEqual([null, 'after the join']);
  });

  it('security: L7 shared history goes whole to a joining server', async () => {
    const { room_id } = await alice.create({ visibility: 'public', history_visibility: 'shared' });
    await alice.sendText(room_id, 'shared with later members');
    expect(bodies(await join(room_id))).toEqual(['shared with later members']);
  });
});

describe('federation: a real participant of a joined-only room', () => {
  let fed: Federation;
  let hs1: FedServer;
  let hs2: FedServer;

  beforeAll(async () => {
    fed = await startFederation(['hs1.test', 'hs2.test']);
    [hs1, hs2] = fed.servers as [FedServer, FedServer];
  }, 60_000);
  afterAll(async () => fed?.close());

  it('security: L7 stores earlier messages redacted, shows them to nobody, and its copy of the room still verifies', async () => {
    const alice = await hs1.user('alice');
    const bob = await hs2.user('bob');
    const { room_id } = await alice.rooms.create({ visibility: 'public', history_visibility: 'joined' });
    await alice.rooms.sendText(room_id, 'before bob');
    await bob.rooms.join(room_id);
    await alice.rooms.sendText(room_id, 'after bob');
    const bodyOn = async (server: FedServer, body: string) =>
      (await server.running.services.db('events').where({ room_id, type: 'room.message' }).orderBy('seq'))
        .map((r) => (typeof r.event === 'string' ? JSON.parse(r.event).content.body : r.event.content.body))
        .includes(body);
    await until(() => bodyOn(hs2, 'after bob'));
    expect(await bodyOn(hs1, 'before bob')).toBe(true);
    expect(await bodyOn(hs2, 'before bob')).toBe(false);
    const seen = (await bob.rooms.messages(room_id, { limit: 50 })).chunk.map((e) => e.content.body).filter(Boolean);
    expect(seen).toEqual(['after bob']);
    const s = hs2.running.services;
    const keys = hs2.running.federation?.context.keyStore;
    const report = await new RoomVerifier(s.roomRepo, s.eventRepo, s.identity, keys).verify(room_id);
    expect(report).toMatchObject({ ok: true });
  });
});
