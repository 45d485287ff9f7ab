import { fileURLToPath } from 'node:url';
import { RoomsApi } from '@parley/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RoomVerifier } from '../src/services/room-verify.js';
import { adminQuery } from './support/postgres.js';
import { type NodeRun, runNode } from './support/run-node.js';
import { startTestServer, type TestServer } from './support/server.js';

const BIN = fileURLToPath(new URL('../bin/parley.mjs', import.meta.url));

describe('parley room verify', () => {
  let server: TestServer;
  let alice: RoomsApi;
  let roomId: string;
  const ids: string[] = [];

  beforeAll(async () => {
    server = await startTestServer();
    const a = server.client();
    await a.register({ username: 'alice', password: 'alice password' });
    alice = new RoomsApi(a);
    ({ room_id: roomId } = await alice.create({ visibility: 'public', name: 'Audited' }));
    for (let i = 0; i < 5; i++) ids.push((await alice.sendText(roomId, `entry ${i}`)).event_id);
    await alice.react(roomId, ids[0] as string, '✅');
    await alice.redact(roomId, ids[1] as string);
  });
  afterAll(() => server?.close());

  function cli(args: string[]): Promise<NodeRun> {
    const env = {
      ...process.env,
      DATABASE_URL: server.database.url,
      PARLEY_DATA_DIR: server.config.data_dir,
      PARLEY_SERVER_NAME: 'hs1.test',
    };
    return runNode(BIN, args, { env });
  }

  const verifier = () => new RoomVerifier(server.services.roomRepo, server.services.eventRepo, server.services.identity);
  const db = () => server.database.name;

  it('passes on an intact room (redacted events included) and fails naming the event after a row is edited', async () => {
    const ok = await cli(['room', 'verify', roomId]);
    expect(ok.stdout).toMatch(/^ok: 13 events verified, head [A-Za-z0-9_-]+\n$/);
    expect(ok.code).toBe(0);

    await adminQuery(db(), `UPDATE events SET event = jsonb_set(event, '{content,body}', '"entry 3 (rewritten)"') WHERE event_id = $1`, [
      ids[3],
    ]);
    const broken = await cli(['room', 'verify', roomId]);
    expect(broken.code).toBe(1);
    expect(broken.stdout).toContain(ids[3]);
    expect(broken.stdout).toMatch(/content_hash/);
    await adminQuery(db(), `UPDATE events SET event = jsonb_set(event, '{content,body}', '"entry 3"') WHERE event_id = $1`, [ids[3]]);
    expect((await verifier().verify(roomId))?.ok).toBe(true);
  });

  it('catches a fake redaction (content stripped without a redaction event)', async () => {
    await adminQuery(db(), `UPDATE events SET event = jsonb_set(event, '{content}', '{}') WHERE event_id = $1`, [ids[2]]);
    const report = await verifier().verify(roomId);
    expect(report).toMatchObject({ ok: false, event_id: ids[2] });
    const original = { body: 'entry 2', msgtype: 'text' };
    await adminQuery(db(), `UPDATE events SET event = jsonb_set(event, '{content}', $2::jsonb) WHERE event_id = $1`, [
      ids[2],
      JSON.stringify(original),
    ]);
    expect((await verifier().verify(roomId))?.ok).toBe(true);
  });

  it('catches a dropped event and a reordered pair', async () => {
    const row = await adminQuery(db(), 'SELECT seq FROM events WHERE event_id = $1', [ids[4]]);
    const seq = row.rows[0].seq as number;
    await adminQuery(db(), 'UPDATE events SET seq = -seq WHERE event_id = $1', [ids[4]]);
    const dropped = await verifier().verify(roomId);
    expect(dropped?.ok).toBe(false);
    // Reported where the gap shows: the record after the missing one.
    expect(dropped && !dropped.ok ? [seq, seq + 1] : []).toContain(dropped && !dropped.ok ? dropped.seq : -1);
    await adminQuery(db(), 'UPDATE events SET seq = -seq WHERE event_id = $1', [ids[4]]);

    // Swap the seq numbers of two neighbours.
    const a = (await adminQuery(db(), 'SELECT seq FROM events WHERE event_id = $1', [ids[0]])).rows[0].seq as number;
    await adminQuery(db(), 'UPDATE events SET seq = 100000 WHERE room_id = $1 AND seq = $2', [roomId, a]);
    await adminQuery(db(), 'UPDATE events SET seq = $2 WHERE room_id = $1 AND seq = $3', [roomId, a, a + 1]);
    await adminQuery(db(), 'UPDATE events SET seq = $2 WHERE room_id = $1 AND seq = 100000', [roomId, a + 1]);
    const swapped = await verifier().verify(roomId);
    expect(swapped?.ok).toBe(false);
    expect(swapped && !swapped.ok ? swapped.seq : -1).toBe(a);
  });

  it('answers an unknown room clearly', async () => {
    const res = await cli(['room', 'verify', '!nope:hs1.test']);
    expect(res.code).toBe(1);
    expect(res.stderr).toContain('no room !nope:hs1.test');
  });
});
