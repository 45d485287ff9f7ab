import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { SignedDeviceList } from '@parley/schemas';
import { ParleyClient } from '@parley/sdk';
import { MAX_PARTS, MemoryCryptoStore, SessionMailbox, toB64u } from '@parley/sdk/crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeAll, expectReads, openDevice, type SessionDevice } from './support/e2e-session.js';
import { type Federation, type FedServer, startFederation } from './support/federation.js';
import { until } from './support/net.js';
import { adminQuery } from './support/postgres.js';

// Issue 14, mailbox (a): a device publishes a mailbox queue in its signed device record and a
// sender deposits the Welcome there too (docs/protocol.md "Mailbox delivery of Welcomes").
// Three real homeservers on loopback: the room is on hs1 (alice); carol's homeserver hs3 is
// stopped between the claim of her key package and the commit that adds her; her mailbox
// queue is on hs2. She reads it while hs3 is still down and joins; once hs3 is back she
// decrypts what was sent after she was added, and the to-device copy of the Welcome is not
// applied a second time.
const run = promisify(execFile);

/** Blocks waiting in carol's queue on the mailbox server (read from its database). */
async function waiting(mailboxServer: FedServer, sendId: string): Promise<number> {
  const r = await adminQuery(
    mailboxServer.database.name,
    'SELECT count(*)::int AS n FROM mailbox_messages m JOIN mailbox_queues q ON q.id = m.queue_id WHERE q.send_id = $1',
    [sendId],
  );
  return Number(r.rows[0]?.n ?? 0);
}

describe('E2eSession: the Welcome of a device whose homeserver is down waits in its mailbox', () => {
  let fed: Federation;
  let hs1: FedServer;
  let hs2: FedServer;
  let hs3: FedServer;
  let alice: SessionDevice;
  let carol: SessionDevice;
  // Alice's transport: once armed, her key-package claim for carol stops hs3 before it answers
  // (after the gate opens), so the commit and its Welcome happen while hs3 is down.
  let armed = false;
  let openGate: () => void = () => undefined;
  const gate = new Promise<void>((resolve) => {
    openGate = resolve;
  });

  beforeAll(async () => {
    fed = await startFederation(['hs1.test', 'hs2.test', 'hs3.test']);
    [hs1, hs2, hs3] = fed.servers as [FedServer, FedServer, FedServer];
    const aliceClient = new ParleyClient({
      baseUrl: hs1.url,
      fetch: async (url, init) => {
        const res = await fetch(url, init);
        if (armed && url.endsWith('/api/v1/keys/claim') && String(init.body).includes(':hs3.test')) {
          armed = false;
          await gate;
          await hs3.stop();
        }
        return res;
      },
    });
    await aliceClient.register({ username: 'alice', password: 'alice password' });
    alice = await openDevice(hs1, 'alice', { client: aliceClient });
    // hs3's client port changes when it restarts: carol's transport follows it (an app would re-resolve).
    const firstOrigin = new URL(hs3.url).origin;
    const carolClient = new ParleyClient({
      baseUrl: hs3.url,
      fetch: (url, init) => fetch(url.replace(firstOrigin, new URL(hs3.url).origin), init),
    });
    await carolClient.register({ username: 'carol', password: 'carol password' });
    carol = await openDevice(hs3, 'carol', { client: carolClient, session: { mailbox: { url: hs2.url } } });
  }, 120_000);

  afterAll(async () => {
    await closeAll([alice, carol]);
    await fed?.close();
  });

  it('publishes the queue in the signed list, deposits the Welcome, joins from the mailbox once, decrypts after', async () => {
    // Carol's signed list, as alice's server gives it, names her queue on hs2.
    const answer = await alice.session.e2e.deviceList(carol.userId);
    const list = answer.device_list as SignedDeviceList;
    const entry = list.devices.find((d) => d.device_id === carol.deviceId);
    expect(entry?.mailbox?.url).toBe(hs2.url.replace(/\/+$/, ''));
    expect(entry?.mailbox?.send_id).toMatch(/^[A-Za-z0-9_-]{32}$/);
    const check = await alice.session.device.trustDeviceList(list, carol.userId);
    expect(check.ok && check.list.devices.find((d) => d.deviceId === carol.deviceId)?.mailbox).toEqual(entry?.mailbox);

    // A homeserver that redirects the mailbox breaks the user key's signature: refused.
    const altered = structuredClone(list);
    const target = altered.devices.find((d) => d.device_id === carol.deviceId);
    if (target?.mailbox === undefined) throw new Error('no mailbox entry');
    target.mailbox.send_id = 'A'.repeat(32);
    const refused = await alice.session.device.trustDeviceList(altered, carol.userId);
    expect(refused.ok).toBe(false);
    expect(refused.ok ? '' : refused.reason).toMatch(/bad signature/);
    await expect(carol.session.e2e.putDeviceList({ ...altered, version: list.version + 1 })).rejects.toThrow();

    // An encrypted room of alice's; carol knows alice's key before her server goes away.
    const { room_id: roomId } = await alice.rooms.create({ visibility: 'private', invite: [carol.userId] });
    await alice.session.enableEncryption(roomId);
    await carol.session.devices(alice.userId);
    armed = true;
    await carol.rooms.join(roomId);
    expect(await carol.session.loadRoom(roomId)).toBe(true);
    openGate();

    try {
      // The commit that adds carol is sequenced on hs1 while hs3 is down.
      await until(async () => (await alice.session.device.members(roomId)).some((m) => m.userId === carol.userId), 60_000);
      expect(hs3.isRunning()).toBe(false);
      const after = await alice.session.send(roomId, { type: 'room.message', body: 'sent after carol was added' });
      // The Welcome waits in carol's queue on hs2 (one sealed block).
      const sendId = entry?.mailbox?.send_id as string;
      await until(async () => (await waiting(hs2, sendId)) === 1, 30_000);

      // Carol reads her mailbox on hs2 (her homeserver still down) and joins from the Welcome.
      await until(async () => {
        await carol.session.checkMailbox();
        return carol.session.device.hasGroup(roomId);
      }, 60_000);
      expect(hs3.isRunning()).toBe(false);
      expect(carol.logs.filter((l) => l.includes('(mailbox): applied'))).toHaveLength(1);
      expect(await waiting(hs2, sendId)).toBe(0); // acknowledged once applied
      const epoch = await carol.session.device.epoch(roomId);
      expect(epoch).toBe(await alice.session.device.epoch(roomId));

      // hs3 back: the messages sent after she was added decrypt.
      await hs3.start();
      await expectReads(carol, roomId, after.eventId, 'sent after carol was added');
      // The to-device copy arrives too and is not applied again.
      await until(() => carol.logs.some((l) => l.includes('(to-device): applied already')), 90_000);
      expect(carol.logs.filter((l) => /\): applied$/.test(l))).toHaveLength(1);
      const reply = await carol.session.send(roomId, { type: 'room.message', body: 'carol is in' });
      await expectReads(alice, roomId, reply.eventId, 'carol is in');
    } finally {
      openGate();
      if (!hs3.isRunning()) await hs3.start();
    }
    // The mailbox was emptied: nothing left for carol.
    expect(await carol.session.checkMailbox()).toBe(0);
    expect(carol.errors).toEqual([]);
  }, 300_000);

  it('a mailbox field rewritten by the homeserver in the stored record is refused by the signature check', async () => {
    const db = hs3.database.name;
    const before = await adminQuery(db, 'SELECT signed::text AS s FROM device_lists WHERE user_id = $1', [carol.userId]);
    const redirect = { url: hs1.url.replace(/\/+$/, ''), send_id: 'R'.repeat(32), seal_key: 'S'.repeat(43) };
    await adminQuery(db, `UPDATE device_lists SET signed = jsonb_set(signed::jsonb, '{devices,0,mailbox}', $2::jsonb) WHERE user_id = $1`, [
      carol.userId,
      JSON.stringify(redirect),
    ]);
    try {
      // hs3 now serves the redirected record (it passes the schema)...
      const served = (await carol.session.e2e.deviceList(carol.userId)).device_list as SignedDeviceList;
      expect(served.devices[0]?.mailbox).toEqual(redirect);
      // ...and a client refuses it: the user key did not sign that mailbox.
      const check = await alice.session.device.trustDeviceList(served, carol.userId);
      expect(check).toMatchObject({ ok: false, reason: 'device list: bad signature' });
    } finally {
      await adminQuery(db, 'UPDATE device_lists SET signed = $2::jsonb WHERE user_id = $1', [carol.userId, before.rows[0]?.s]);
    }
  });

  it('a deposit larger than one block travels in parts and is reassembled; one beyond the cap is not deposited', async () => {
    const log: string[] = [];
    const receiver = new SessionMailbox(new MemoryCryptoStore(), { url: hs2.url, log: (m) => log.push(m) });
    await receiver.setup();
    const target = receiver.published;
    if (target === undefined) throw new Error(`no queue: ${log.join(' | ')}`);
    const sender = new SessionMailbox(new MemoryCryptoStore(), { url: false, log: (m) => log.push(m) });
    const welcome = toB64u(crypto.getRandomValues(new Uint8Array(30_000)));
    const envelope = { type: 'mls.welcome', sender: alice.userId, content: { room_id: '!big:hs1.test', epoch: 3, welcome } };
    expect(await sender.deposit(target, envelope)).toBe(true);
    expect(await waiting(hs2, target.send_id)).toBe(3);
    const got: unknown[] = [];
    const collect = async (e: unknown) => {
      got.push(e);
      return 'done' as const;
    };
    expect(await receiver.poll(collect)).toBe(1);
    expect(got).toEqual([envelope]);
    expect(await waiting(hs2, target.send_id)).toBe(0);
    // More than MAX_PARTS blocks: not deposited at all.
    const huge = { ...envelope, content: { ...envelope.content, welcome: 'A'.repeat(MAX_PARTS * 16 * 1024) } };
    expect(await sender.deposit(target, huge)).toBe(false);
    expect(await waiting(hs2, target.send_id)).toBe(0);
    expect(log.some((l) => /need more than 4 /.test(l))).toBe(true);
  });

  it("the mailbox server's database dump names none of the users, devices or rooms", async () => {
    const queue = JSON.parse(new TextDecoder().decode((await carol.store.get('mailbox/queue')) as Uint8Array)) as { sendId: string };
    const { stdout } = await run('pg_dump', ['--no-owner', '--data-only', '--inserts', hs2.database.url], {
      maxBuffer: 64 * 1024 * 1024,
    });
    // The dump is real and holds carol's queue.
    expect(stdout).toContain(queue.sendId);
    const lower = stdout.toLowerCase();
    const secrets = [alice.userId, carol.userId, alice.deviceId, carol.deviceId, 'alice', 'carol', 'hs1.test', 'hs3.test'];
    for (const secret of secrets) {
      expect(lower, `the dump names ${secret}`).not.toContain(secret.toLowerCase());
      expect(lower).not.toContain(Buffer.from(secret).toString('hex'));
    }
  });
});
