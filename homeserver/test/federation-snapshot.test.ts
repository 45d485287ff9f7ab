import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RoomVerifier } from '../src/services/room-verify.js';
import { type Federation, type FedServer, startFederation } from './support/federation.js';
import { until } from './support/net.js';

const BIN = fileURLToPath(new URL('../bin/parley.mjs', import.meta.url));

type Person = Awaited<ReturnType<FedServer['user']>>;

/**
 * Joining a room larger than `federation.join_full_chain_max`: the host answers with a state
 * snapshot and recent entries; older history is backfilled (and verified) when the joiner
 * pages back, so pagination works exactly as for a local room.
 */
describe('federation: joining a large room from a state snapshot', () => {
  let fed: Federation;
  let hs1: FedServer;
  let hs2: FedServer;
  let alice: Person;
  let bob: Person;
  let roomId: string;
  const sent: string[] = [];
  let redactedId: string;
  let editedId: string;

  beforeAll(async () => {
    fed = await startFederation(['hs1.test', 'hs2.test', 'hs3.test'], {
      overrides: () => ({ federation: { join_full_chain_max: 20, join_recent_entries: 8 } }),
    });
    [hs1, hs2] = fed.servers as [FedServer, FedServer];
    alice = await hs1.user('alice');
    bob = await hs2.user('bob');
    ({ room_id: roomId } = await alice.rooms.create({ visibility: 'public', name: 'Big', topic: 'lots of history' }));
    for (let i = 0; i < 5; i++) {
      const member = await hs1.user(`member${i}`);
      await member.rooms.join(roomId);
    }
    for (let i = 0; i < 60; i++) sent.push((await alice.rooms.sendText(roomId, `old ${i}`)).event_id);
    editedId = sent[10] as string;
    await alice.rooms.edit(roomId, editedId, 'old 10 (edited)');
    redactedId = sent[20] as string;
    await alice.rooms.redact(roomId, redactedId);
    await alice.rooms.react(roomId, sent[30] as string, '🎉');
    for (let i = 0; i < 5; i++) sent.push((await alice.rooms.sendText(roomId, `recent ${i}`)).event_id);
  }, 120_000);
  afterAll(async () => fed?.close());

  it('joins with current state and recent history only', async () => {
    await bob.rooms.join(roomId);
    const room = await hs2.running.services.roomRepo.find(roomId);
    expect(room?.history_from).toBeGreaterThan(60);
    // Current state is complete: name, topic and every member.
    const state = await bob.rooms.getState(roomId);
    expect(state.find((e) => e.type === 'room.name')?.content.name).toBe('Big');
    expect(state.find((e) => e.type === 'room.topic')?.content.topic).toBe('lots of history');
    const members = (await bob.rooms.members(roomId)).map((m) => m.user_id).sort();
    expect(members).toEqual(['@alice:hs1.test', '@bob:hs2.test', ...[0, 1, 2, 3, 4].map((i) => `@member${i}:hs1.test`)].sort());
    const latest = await bob.rooms.messages(roomId, { limit: 3 });
    expect(latest.chunk[0]?.type).toBe('room.member');
    expect(latest.chunk[1]?.content.body).toBe('recent 4');
  });

  it('serves the current state to servers in the room (GET rooms/:id/state), and only to them', async () => {
    const ask = (from: FedServer) =>
      from.running.federation?.context.client.request({
        destination: 'hs1.test',
        method: 'GET',
        path: `/federation/v1/rooms/${encodeURIComponent(roomId)}/state`,
      });
    const res = (await ask(hs2))?.body as {
      seq: number;
      entries: Array<{ event: { type: string; state_key: string; content: Record<string, unknown> } }>;
    };
    expect(res.entries.find((e) => e.event.type === 'room.name')?.event.content.name).toBe('Big');
    expect(res.entries.filter((e) => e.event.type === 'room.member')).toHaveLength(7);
    await expect(ask(fed.byName('hs3.test'))).rejects.toMatchObject({ status: 403 });
  });

  it('pages back through older history exactly as the host has it (backfilled and verified on demand)', async () => {
    const all = async (rooms: Person['rooms']) => {
      const out: Array<{ id: string; seq: number | undefined; body: unknown; reactions: unknown; edit: unknown }> = [];
      let from: string | undefined;
      for (;;) {
        const page = await rooms.messages(roomId, { limit: 17, ...(from ? { from } : {}) });
        for (const e of page.chunk)
          out.push({
            id: e.event_id,
            seq: e.seq,
            body: e.content.body,
            reactions: (e.unsigned?.reactions as Array<{ key: string; count: number }> | undefined)?.map((r) => `${r.key}×${r.count}`),
            edit: (e.unsigned?.edit as { content?: unknown } | undefined)?.content,
          });
        if (!page.end) return out;
        from = page.end;
      }
    };
    const onHost = await all(alice.rooms);
    const onBob = await all(bob.rooms);
    expect(onBob.map((e) => e.id)).toEqual(onHost.map((e) => e.id));
    expect(onBob).toEqual(onHost);
    expect((await hs2.running.services.roomRepo.find(roomId))?.history_from).toBe(1);
    // The redacted message stays redacted, the edit and the reaction are there.
    expect(onBob.find((e) => e.id === redactedId)?.body).toBeUndefined();
    expect(JSON.stringify(onBob.find((e) => e.id === sent[30])?.reactions)).toContain('🎉');
  });

  it('keeps the chain: new events after the snapshot still verify and arrive in order', async () => {
    await alice.rooms.sendText(roomId, 'after the join');
    await bob.rooms.sendText(roomId, 'bob says hi');
    await until(async () => (await alice.rooms.messages(roomId, { limit: 1 })).chunk[0]?.content.body === 'bob says hi');
    await until(async () => (await bob.rooms.messages(roomId, { limit: 1 })).chunk[0]?.content.body === 'bob says hi');
    const s2 = hs2.running;
    const report = await new RoomVerifier(
      s2.services.roomRepo,
      s2.services.eventRepo,
      s2.services.identity,
      s2.federation?.context.keyStore,
    ).verify(roomId);
    expect(report, JSON.stringify(report)).toMatchObject({ ok: true });
  });

  it('`parley room verify` on the participant fetches the host’s keys and verifies the room', async () => {
    const s2 = hs2.running;
    const dir = await mkdtemp(path.join(tmpdir(), 'parley-cli-'));
    const file = path.join(dir, 'parley.yaml');
    await writeFile(
      file,
      JSON.stringify({
        server_name: 'hs2.test',
        federation: { static_servers: s2.config.federation.static_servers, allow_private: ['127.0.0.0/8'] },
      }),
    );
    const env = {
      ...process.env,
      DATABASE_URL: hs2.database.url,
      PARLEY_DATA_DIR: s2.config.data_dir,
      PARLEY_CONFIG: file,
      PARLEY_LOG_LEVEL: 'error',
    };
    const out = await new Promise<{ code: number | null; stdout: string }>((resolve) => {
      const child = spawn(process.execPath, [BIN, 'room', 'verify', roomId], { env, stdio: ['ignore', 'pipe', 'inherit'] });
      let stdout = '';
      child.stdout.on('data', (d) => {
        stdout += d;
      });
      child.on('exit', (code) => resolve({ code, stdout }));
    });
    await rm(dir, { recursive: true, force: true });
    expect(out.stdout).toMatch(/^ok: \d+ events verified/);
    expect(out.code).toBe(0);
  }, 60_000);

  it('verifies a partially held room from its snapshot on, and pages below it with a clear 502 while the host is down', async () => {
    const { room_id: other } = await alice.rooms.create({ visibility: 'public', name: 'Other' });
    for (let i = 0; i < 30; i++) await alice.rooms.sendText(other, `other ${i}`);
    await bob.rooms.join(other);
    const s2 = hs2.running;
    const verifier = new RoomVerifier(s2.services.roomRepo, s2.services.eventRepo, s2.services.identity, s2.federation?.context.keyStore);
    expect(await verifier.verify(other)).toMatchObject({ ok: true });
    // Tamper with a stored recent entry: the verifier names it.
    const [row] = await s2.services
      .db('events')
      .where({ room_id: other })
      .orderBy('seq', 'desc')
      .limit(2)
      .offset(1)
      .select('event_id', 'event');
    const event = typeof row.event === 'string' ? JSON.parse(row.event) : row.event;
    event.content.body = 'forged';
    await s2.services
      .db('events')
      .where({ event_id: row.event_id })
      .update({ event: JSON.stringify(event) });
    expect(await verifier.verify(other)).toMatchObject({ ok: false, event_id: row.event_id });
    await hs1.stop();
    try {
      const page = await bob.rooms.messages(other, { limit: 5 });
      await expect(bob.rooms.messages(other, { limit: 50, from: page.end as string })).rejects.toMatchObject({
        status: 502,
        code: 'PARLEY_UNAVAILABLE',
      });
    } finally {
      await hs1.start();
    }
  });
});
