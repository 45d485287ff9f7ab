import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { decodeBody } from '@parley/federation/relay';
import type { ParleyClient, RoomsApi } from '@parley/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../src/logger.js';
import { RelayFallbackService } from '../src/relay/fallback.js';
import { type Federation, type FedServer, startFederation } from './support/federation.js';
import { freePort, until } from './support/net.js';
import { heldOn, messageBodies, pendingEvents } from './support/relay.js';
import { openStream, type TestStream } from './support/stream-client.js';
import { TcpGate } from './support/tcp-gate.js';

type Person = { client: ParleyClient; rooms: RoomsApi; userId: string };

const bodies = messageBodies;

/**
 * Store-and-forward over real TLS on loopback, with Redis (BullMQ delivery): a.test hosts a
 * room carol on c.test has joined; a.test's static map sends c.test through a TCP gate that we
 * close (a closed port) and open again. r.test is a relay (relay.enabled) that reaches c.test
 * directly; a.test names it as its anchor relay.
 */
describe('relay fallback: A cannot reach C directly, relay R can', () => {
  let fed: Federation;
  let a: FedServer;
  let r: FedServer;
  let c: FedServer;
  let gate: TcpGate;
  let alice: Person;
  let carol: Person;
  let roomId: string;
  let stream: TestStream;

  const heldRows = () => heldOn(r, 'a.test', 'c.test');
  const stateOfC = async () => (await a.running.services.db('destinations').where({ name: 'c.test' }).first())?.state as string | undefined;
  const pendingForC = () => pendingEvents(a, 'c.test');

  beforeAll(async () => {
    const gatePort = await freePort();
    let cPort = 0;
    fed = await startFederation(['a.test', 'r.test', 'c.test'], {
      redis: true,
      overrides: (name, statics) => {
        cPort = Number(statics['c.test']?.split(':')[1]);
        if (name === 'a.test')
          return {
            federation: { static_servers: { ...statics, 'c.test': `127.0.0.1:${gatePort}` } },
            relay: { anchors: ['r.test'], fallback_after_ms: 2_000, fallback_poll_ms: 500, fallback_direct_retry_max_ms: 3_000 },
          };
        if (name === 'r.test') return { relay: { enabled: true } };
        return {};
      },
    });
    [a, r, c] = fed.servers as [FedServer, FedServer, FedServer];
    gate = new TcpGate(gatePort, cPort);
    await gate.open();
    alice = await a.user('alice');
    carol = await c.user('carol');
    ({ room_id: roomId } = await alice.rooms.create({ visibility: 'public', name: 'Relayed' }));
    await carol.rooms.join(roomId);
    await alice.rooms.sendText(roomId, 'before');
    await until(async () => (await bodies(carol.rooms, roomId)).includes('before'), 30_000);
    stream = openStream(c.url, carol.client.session?.access_token as string);
    await stream.ready;
  }, 120_000);

  afterAll(async () => {
    stream?.close();
    await gate?.close();
    await fed?.close();
  });

  it("A's events reach C through R after the direct failures; A counts them delivered only on C's receipt", async () => {
    await gate.close();
    const sent: string[] = [];
    for (let i = 0; i < 5; i++) sent.push((await alice.rooms.sendText(roomId, `via relay ${i}`)).event_id);
    await until(async () => {
      const got = await bodies(carol.rooms, roomId);
      return [0, 1, 2, 3, 4].every((i) => got.includes(`via relay ${i}`));
    }, 60_000);
    // R held them durably and delivered them, with C's signed receipt in C's answer.
    const held = await heldRows();
    expect(held.length).toBeGreaterThan(0);
    await until(async () => (await heldRows()).every((h) => h.delivered_ts !== null), 30_000);
    for (const h of await heldRows()) expect((h.answer as { receipt?: { destination?: string } }).receipt?.destination).toBe('c.test');
    // A marked its outbox rows delivered (on the receipt), although C is still unreachable directly.
    await until(async () => (await pendingForC()) === 0, 30_000);
    expect(await stateOfC()).not.toBe('up');
    const metrics = await (await fetch(`${a.url}/metrics`)).text();
    expect(metrics).toMatch(/parley_federation_relay_offers_total\{outcome="delivered"\} [1-9]/);
    // The relay saw the origin's signed request, unchanged: C verified a.test's signature on it.
    const envelope = held[0]?.envelope as { authorization?: string; destination?: string };
    expect(envelope.destination).toBe('c.test');
    expect(envelope.authorization).toMatch(/^Parley origin="a\.test",destination="c\.test"/);
  }, 90_000);

  it('when A→C heals, traffic goes direct again and the relay carries nothing more', async () => {
    await gate.open();
    // Carol's activity reaches a.test (c.test → a.test works), which retries c.test at once;
    // otherwise the next direct retry comes within fallback_direct_retry_max_ms.
    await carol.rooms.sendText(roomId, 'carol says hi');
    await until(async () => (await stateOfC()) === 'up', 60_000);
    const before = (await heldRows()).length;
    for (let i = 0; i < 5; i++) await alice.rooms.sendText(roomId, `direct ${i}`);
    await until(async () => {
      const got = await bodies(carol.rooms, roomId);
      return [0, 1, 2, 3, 4].every((i) => got.includes(`direct ${i}`));
    }, 30_000);
    expect((await heldRows()).length).toBe(before);
    expect(await pendingForC()).toBe(0);
  }, 90_000);

  it("no duplicates anywhere: C's timeline and carol's stream hold every message once", async () => {
    const expected = [
      'before',
      ...[0, 1, 2, 3, 4].map((i) => `via relay ${i}`),
      'carol says hi',
      ...[0, 1, 2, 3, 4].map((i) => `direct ${i}`),
    ];
    const onC = await bodies(carol.rooms, roomId);
    expect(onC).toEqual(expected);
    const onA = await bodies(alice.rooms, roomId);
    expect(onA).toEqual(expected);
    const page = await carol.rooms.messages(roomId, { limit: 500 });
    const ids = page.chunk.map((e) => e.event_id);
    expect(new Set(ids).size).toBe(ids.length);
    // The stream (opened after 'before'): every later message exactly once, in order.
    await until(() => stream.frames.some((f) => f.kind === 'event' && f.data.event.content.body === 'direct 4'), 20_000);
    const streamed = stream.frames
      .filter((f) => f.kind === 'event' && f.data.event.room_id === roomId && f.data.event.type === 'room.message')
      .map((f) => (f.kind === 'event' ? String(f.data.event.content.body) : ''));
    expect(streamed).toEqual(expected.slice(1));
    const streamIds = stream.frames.filter((f) => f.kind === 'event').map((f) => (f.kind === 'event' ? f.data.event.event_id : ''));
    expect(new Set(streamIds).size).toBe(streamIds.length);
  }, 60_000);

  it('in an encrypted room the relay carries only ciphertext: plaintext is refused at the origin, the held bytes never contain it', async () => {
    const { room_id: secret } = await alice.rooms.create({ visibility: 'public', name: 'Secret', encrypted: true });
    await carol.rooms.join(secret);
    await until(async () => (await carol.rooms.members(secret)).filter((m) => m.membership === 'join').length === 2, 30_000);
    // The clients' key, which no server has (MLS in real rooms; AES-GCM stands in for it here).
    const key = randomBytes(32);
    const marker = `plaintext-marker-${randomBytes(8).toString('hex')}`;
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', key, iv);
    const ciphertext = Buffer.concat([iv, cipher.update(marker, 'utf8'), cipher.final(), cipher.getAuthTag()]).toString('base64url');
    await gate.close();
    await expect(alice.rooms.sendText(secret, marker)).rejects.toMatchObject({ status: 400 });
    await alice.rooms.send(secret, 'room.encrypted', { epoch: 1, ciphertext });
    const arrived = async () =>
      (await carol.rooms.messages(secret, { limit: 20 })).chunk.find((e) => e.type === 'room.encrypted')?.content.ciphertext;
    await until(async () => (await arrived()) === ciphertext, 60_000);
    await gate.open();
    const carried = (await heldRows()).map((h) => decodeBody((h.envelope as { body?: string }).body).toString('utf8')).join('\n');
    expect(carried).toContain(ciphertext);
    expect(carried).not.toContain(marker);
    // Carol's client, holding the key, reads it.
    const raw = Buffer.from(String(await arrived()), 'base64url');
    const decipher = createDecipheriv('aes-256-gcm', key, raw.subarray(0, 12));
    decipher.setAuthTag(raw.subarray(raw.length - 16));
    expect(Buffer.concat([decipher.update(raw.subarray(12, raw.length - 16)), decipher.final()]).toString('utf8')).toBe(marker);
  }, 90_000);

  it('relay choice is member-based: a relay-capable server in the room counts only once it has been there the minimum age', async () => {
    const fed_ = a.running.federation as NonNullable<typeof a.running.federation>;
    const choose = (minAgeMs: number) =>
      new RelayFallbackService(
        a.running.services.db,
        fed_.context,
        a.running.services.identity,
        () => null,
        { fallbackAfterMs: 0, directRetryMaxMs: 1000, pollMs: 100, anchors: [], minAgeMs, epochMs: 86_400_000, tries: 2 },
        createLogger('silent'),
      ).relaysFor('c.test');
    // The configured anchor is what a.test uses now.
    expect(await (fed_.delivery.relay as RelayFallbackService).relaysFor('c.test')).toEqual(['r.test']);
    // Without anchors: r.test is no participant of a room c.test is in, so there is nothing.
    expect(await choose(0)).toEqual([]);
    const rita = await r.user('rita');
    await rita.rooms.join(roomId);
    await until(async () => (await alice.rooms.members(roomId)).some((m) => m.user_id === rita.userId && m.membership === 'join'), 30_000);
    // r.test advertises the relay capability in its key document and shares the room with c.test.
    expect(await choose(0)).toEqual(['r.test']);
    // But it only just appeared there: with a day's minimum age it is not chosen.
    expect(await choose(86_400_000)).toEqual([]);
  }, 60_000);
});
