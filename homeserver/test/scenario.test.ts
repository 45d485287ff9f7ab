import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { downloadMedia, RoomsApi, uploadMedia } from '@parley/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminQuery } from './support/postgres.js';
import { startTestServer, type TestServer } from './support/server.js';

const BIN = fileURLToPath(new URL('../bin/parley.mjs', import.meta.url));

function verifyCli(server: TestServer, roomId: string): Promise<{ code: number | null; stdout: string }> {
  const env = {
    ...process.env,
    DATABASE_URL: server.database.url,
    PARLEY_DATA_DIR: server.config.data_dir,
    PARLEY_SERVER_NAME: server.config.server_name,
  };
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, 'room', 'verify', roomId], { env, stdio: ['ignore', 'pipe', 'inherit'] });
    let stdout = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.on('exit', (code) => resolve({ code, stdout }));
  });
}

/** Issue 3's "done when", end to end through the sdk on one server. */
describe('two users on one server: the whole room story', () => {
  const MESSAGES = Number(process.env.PARLEY_SCENARIO_MESSAGES ?? 10_000);
  let server: TestServer;

  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(() => server?.close());

  it('create, invite, join, chat, edit, react, reply, redact, 10,000 messages back, search, media, verify', async () => {
    const aliceClient = server.client();
    await aliceClient.register({ username: 'alice', password: 'alice password' });
    const bobClient = server.client();
    await bobClient.register({ username: 'bob', password: 'bob password' });
    const alice = new RoomsApi(aliceClient);
    const bob = new RoomsApi(bobClient);

    const { room_id: roomId } = await alice.create({ visibility: 'private', name: 'Project', invite: ['@bob:hs1.test'] });
    await bob.join(roomId);
    const hello = await alice.sendText(roomId, 'hello bob, welcome to the project room');
    const answer = await bob.sendText(roomId, 'thanks alice');
    await alice.edit(roomId, hello.event_id, 'hello bob, welcome to the Project room!');
    await bob.react(roomId, hello.event_id, '👋');
    await alice.reply(roomId, answer.event_id, 'you are welcome');
    const oops = await bob.sendText(roomId, 'my password is hunter2');
    await bob.redact(roomId, oops.event_id, 'posted a secret');

    // An image through media: upload, then reference it in a message, then download it.
    const png = Buffer.from(
      '89504e470d0a1a0a0000000d4948445200000001000000010806000000' +
        '1f15c4890000000d4944415478da63f8cfc0f01f0005000201e2f5b5f20000000049454e44ae426082',
      'hex',
    );
    const uploaded = await uploadMedia(aliceClient, png, { filename: 'dot.png', contentType: 'image/png' });
    expect(uploaded.content_type).toBe('image/png');
    await alice.send(roomId, 'room.message', { body: 'dot.png', msgtype: 'image', url: uploaded.content_uri });

    let sent = 0;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (sent < MESSAGES) {
          const i = sent++;
          await (i % 2 ? alice : bob).sendText(roomId, `bulk ${i}`);
        }
      }),
    );

    // Bob pages back through everything.
    const bulk = new Set<number>();
    let imageUri: string | undefined;
    let from: string | undefined;
    let pages = 0;
    const seqs: number[] = [];
    while (true) {
      const page = await bob.messages(roomId, { limit: 200, ...(from ? { from } : {}) });
      pages += 1;
      for (const ev of page.chunk) {
        seqs.push(ev.seq as number);
        const m = /^bulk (\d+)$/.exec(String(ev.content.body ?? ''));
        if (m) bulk.add(Number(m[1]));
        if (ev.content.msgtype === 'image') imageUri = ev.content.url as string;
        if (ev.event_id === hello.event_id) {
          expect(ev.unsigned?.edit).toMatchObject({ content: { body: 'hello bob, welcome to the Project room!' } });
          expect(ev.unsigned?.reactions).toEqual([{ key: '👋', count: 1, me: true }]);
        }
        if (ev.event_id === oops.event_id) expect(ev.content).toEqual({});
      }
      if (!page.end) break;
      from = page.end;
    }
    expect(bulk.size).toBe(MESSAGES);
    expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => seqs.length - i));
    expect(pages).toBeGreaterThanOrEqual(Math.floor(MESSAGES / 200));

    const found = await bob.search('Project room');
    expect(found.results.map((r) => r.event.event_id)).toContain(hello.event_id);
    expect((await bob.search('hunter2')).results).toEqual([]);

    const image = await downloadMedia(bobClient, imageUri as string);
    expect(Buffer.from(image.data).equals(png)).toBe(true);
    expect(image.contentType).toBe('image/png');

    const intact = await verifyCli(server, roomId);
    expect(intact.stdout).toMatch(/^ok: /);
    expect(intact.code).toBe(0);
    expect(intact.stdout).toContain(`${seqs.length} events verified`);

    await adminQuery(
      server.database.name,
      `UPDATE events SET event = jsonb_set(event, '{content,body}', '"thanks, eve"') WHERE event_id = $1`,
      [answer.event_id],
    );
    const tampered = await verifyCli(server, roomId);
    expect(tampered.code).toBe(1);
    expect(tampered.stdout).toContain(answer.event_id);
  }, 600_000);
});
