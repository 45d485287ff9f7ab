import { execFile } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import type { DeviceKeysQueryResponse, EncryptedContent, KeyClaimResponse, SignedDeviceList, SyncResponse } from '@parley/schemas';
import { ParleyClient, RoomsApi, uploadMedia } from '@parley/sdk';
import { CryptoDevice, encryptAttachment, MemoryCryptoStore } from '@parley/sdk/crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newUserKey, opaque, signedList } from './support/e2e.js';
import { type Federation, type FedServer, startFederation } from './support/federation.js';
import { until } from './support/net.js';

// Issue 12, across three real homeservers (TLS on loopback): key claims and device-list
// queries over federation, device-list changes delivered durably through the outbox,
// first-commit-wins decided by the host for commits from other servers, Welcomes that wait
// for a device that was away, and what the servers store of an encrypted conversation.

type Person = Awaited<ReturnType<FedServer['user']>>;
const enc = encodeURIComponent;
const syncFrom = (c: ParleyClient, since?: number) =>
  c.request<SyncResponse>('GET', `/api/v1/sync?timeout=0${since === undefined ? '' : `&since=${since}`}`);

/** Any request from `server` to the room's host tells the host it is back (no waiting out a backoff). */
async function nudge(p: Person, roomId: string) {
  await p.client.request('PUT', `/api/v1/rooms/${enc(roomId)}/typing`, { typing: false });
}

/** The same device after its server restarted (on a new client port). */
function reconnect(p: Person, server: FedServer): Person {
  const client = new ParleyClient({ baseUrl: server.url, session: p.client.session });
  return { client, rooms: new RoomsApi(client), userId: p.userId };
}

/** Signs and sends a raw transaction as `from` (a real server speaking for itself). */
async function sendTxn(from: FedServer, to: string, edus: unknown[]) {
  const client = from.running.federation?.context.client;
  if (!client) throw new Error(`${from.name} has no federation`);
  return client.request({ destination: to, method: 'PUT', path: `/federation/v1/send/${randomUUID()}`, body: { events: [], edus } });
}

async function remoteList(server: FedServer, userId: string) {
  return server.running.services.db('remote_device_lists').where({ user_id: userId }).first<{ version: number } | undefined>();
}

describe('federation: E2E keys and MLS rooms (issue 12)', () => {
  let fed: Federation;
  let hs1: FedServer;
  let hs2: FedServer;
  let hs3: FedServer;
  let alice: Person;
  let bob: Person;
  let carol: Person;
  let roomId: string;

  beforeAll(async () => {
    fed = await startFederation(['hs1.test', 'hs2.test', 'hs3.test']);
    [hs1, hs2, hs3] = fed.servers as [FedServer, FedServer, FedServer];
    alice = await hs1.user('alice');
    bob = await hs2.user('bob');
    carol = await hs3.user('carol');
    ({ room_id: roomId } = await alice.rooms.create({ visibility: 'public', name: 'Secret', encrypted: true }));
    await bob.rooms.join(roomId);
    await carol.rooms.join(roomId);
    for (const p of [alice, bob, carol])
      await until(async () => (await p.rooms.members(roomId)).filter((m) => m.membership === 'join').length === 3);
  }, 120_000);
  afterAll(async () => {
    await fed?.close();
  });

  it('claims key packages of a user on another server: each one-time package once, then the last resort', async () => {
    const packages = [opaque(), opaque()];
    const lastResort = opaque();
    await bob.client.request('POST', '/api/v1/keys/upload', { key_packages: packages, last_resort: lastResort });
    const device = bob.client.session?.device_id as string;
    const claims = await Promise.all([
      alice.client.request<KeyClaimResponse>('POST', '/api/v1/keys/claim', { users: { [bob.userId]: [device] } }),
      carol.client.request<KeyClaimResponse>('POST', '/api/v1/keys/claim', { users: { [bob.userId]: [] } }),
    ]);
    const got = claims.map((c) => c.key_packages[bob.userId]?.[device]);
    expect(got.map((g) => g?.last_resort)).toEqual([false, false]);
    expect(new Set(got.map((g) => g?.key_package))).toEqual(new Set(packages));
    expect(got.map((g) => g?.remaining).sort()).toEqual([0, 1]);
    const third = await alice.client.request<KeyClaimResponse>('POST', '/api/v1/keys/claim', { users: { [bob.userId]: [device] } });
    expect(third.key_packages[bob.userId]?.[device]).toEqual({ key_package: lastResort, last_resort: true, remaining: 0 });
  });

  it("queries a remote user's signed device list", async () => {
    const key = newUserKey();
    const list = signedList(bob.userId, key, [bob.client.session?.device_id as string], 1);
    await bob.client.request('PUT', '/api/v1/keys/device_list', list);
    const answer = await carol.client.request<DeviceKeysQueryResponse>('POST', '/api/v1/keys/query', { users: [bob.userId, alice.userId] });
    expect(answer.device_lists[bob.userId]).toEqual({ user_id: bob.userId, device_list: list, devices: [bob.client.session?.device_id] });
    expect(answer.device_lists[alice.userId]).toMatchObject({ device_list: null });
    expect(answer.failures).toBeUndefined();
  });

  it('first commit wins across servers: the host orders, the loser is told the epoch moved on', async () => {
    const before = (await alice.rooms.messages(roomId, { limit: 100 })).chunk.filter((e) => e.type === 'room.mls.commit').length;
    const results = await Promise.allSettled([
      bob.rooms.send(roomId, 'room.mls.commit', { epoch: 0, commit: opaque() }),
      carol.rooms.send(roomId, 'room.mls.commit', { epoch: 0, commit: opaque() }),
    ]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const lost = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    expect(lost?.reason).toMatchObject({ status: 409, code: 'PARLEY_MLS_STALE_EPOCH', message: expect.stringContaining('epoch 1') });
    // Every server holds exactly the winner.
    for (const p of [alice, bob, carol])
      await until(
        async () =>
          (await p.rooms.messages(roomId, { limit: 100 })).chunk.filter((e) => e.type === 'room.mls.commit').length === before + 1,
      );
    // The loser retries on the new epoch.
    const loser = results[0]?.status === 'rejected' ? bob : carol;
    await loser.rooms.send(roomId, 'room.mls.commit', { epoch: 1, commit: opaque() });
    await expect(bob.rooms.sendText(roomId, 'plain words')).rejects.toMatchObject({ status: 400, code: 'PARLEY_ROOM_ENCRYPTED' });
  });

  it('a participant server down during commits catches up, re-checks the epoch rule, and its users commit on the new epoch', async () => {
    const epochOf = async (server: FedServer) =>
      (await server.running.services.db('room_mls_epochs').where({ room_id: roomId }).first<{ epoch: number }>())?.epoch;
    const start = (await epochOf(hs1)) as number;
    expect(await epochOf(hs3)).toBe(start);
    await hs3.stop();
    await alice.rooms.send(roomId, 'room.mls.commit', { epoch: start, commit: opaque() });
    await bob.rooms.send(roomId, 'room.mls.commit', { epoch: start + 1, commit: opaque() });
    await hs3.start();
    carol = reconnect(carol, hs3);
    await nudge(carol, roomId);
    await until(async () => (await epochOf(hs3)) === start + 2, 40_000);
    // Carol's server may not know the epoch moved until it applied the commits; now it does.
    await carol.rooms.send(roomId, 'room.mls.commit', { epoch: start + 2, commit: opaque() });
    await until(async () => (await epochOf(hs2)) === start + 3);
  }, 90_000);

  it('a device-list change reaches a server that was down during it (outbox, not best effort)', async () => {
    const since = (await syncFrom(bob.client)).next;
    await hs2.stop();
    const key = newUserKey();
    const list = signedList(alice.userId, key, [alice.client.session?.device_id as string], 7);
    await alice.client.request('PUT', '/api/v1/keys/device_list', list);
    // hs3 hears at once; hs1 tries hs2 and fails, and keeps the change for it.
    await until(async () => (await remoteList(hs3, alice.userId))?.version === 7);
    await until(async () => (await hs1.running.services.db('destinations').where({ name: 'hs2.test' }).first())?.state !== 'up');
    await hs2.start();
    bob = reconnect(bob, hs2);
    const bobAgain = bob.client;
    await nudge(bob, roomId);
    await until(async () => (await remoteList(hs2, alice.userId))?.version === 7, 40_000);
    await until(async () =>
      (await syncFrom(bobAgain, since)).frames.some((f) => f.kind === 'device_list' && f.data.user_id === alice.userId),
    );
  }, 90_000);

  it('an offline device gets its Welcome when it comes back, exactly once', async () => {
    const since = (await syncFrom(bob.client)).next;
    const device = bob.client.session?.device_id as string;
    await hs2.stop();
    const welcome = { room_id: roomId, epoch: 2, welcome: opaque(2000) };
    await carol.client.request('PUT', `/api/v1/send_to_device/mls.welcome/${randomUUID()}`, {
      messages: { [bob.userId]: { [device]: welcome } },
    });
    await until(async () => (await hs3.running.services.db('destinations').where({ name: 'hs2.test' }).first())?.state !== 'up');
    await hs2.start();
    bob = reconnect(bob, hs2);
    const bobAgain = bob.client;
    // hs2 talks to hs3 (a claim), which makes hs3 retry now instead of after its backoff.
    await bobAgain.request('POST', '/api/v1/keys/claim', { users: { [carol.userId]: [] } });
    let got: SyncResponse['frames'] = [];
    await until(async () => {
      got = (await syncFrom(bobAgain, since)).frames.filter((f) => f.kind === 'to_device' && f.data.type === 'mls.welcome');
      return got.length > 0;
    }, 40_000);
    expect(got).toHaveLength(1);
    expect(got[0]?.data).toMatchObject({ sender: carol.userId, content: welcome });
  }, 90_000);

  it('refuses device-list changes a server may not send: for another server’s user, unsigned, or older', async () => {
    expect((await remoteList(hs2, alice.userId))?.version).toBe(7);
    const key = newUserKey();
    const forged = signedList(alice.userId, key, ['EVIL'], 50);
    const answer = (list: unknown) => ({
      type: 'device_list',
      user_id: alice.userId,
      answer: { user_id: alice.userId, device_list: list, devices: ['EVIL'] },
    });
    // hs3 speaking for alice of hs1.
    await sendTxn(hs3, 'hs2.test', [answer(forged)]);
    // hs1 itself, but the list does not verify under its own key.
    const tampered = { ...signedList(alice.userId, key, ['A'], 60), devices: forged.devices };
    await sendTxn(hs1, 'hs2.test', [answer(tampered)]);
    // hs1 with a validly signed but older list: kept out, the newer one stays.
    await sendTxn(hs1, 'hs2.test', [answer(signedList(alice.userId, key, ['A'], 3))]);
    expect((await remoteList(hs2, alice.userId))?.version).toBe(7);
    const seen = await bob.client.request<DeviceKeysQueryResponse>('POST', '/api/v1/keys/query', { users: [alice.userId] });
    expect(seen.device_lists[alice.userId]?.devices).not.toContain('EVIL');
  });

  it("a remote user's list is answered from what their server pushed when that server is unreachable", async () => {
    await hs1.stop();
    try {
      const answer = await bob.client.request<DeviceKeysQueryResponse>('POST', '/api/v1/keys/query', { users: [alice.userId] });
      expect(answer.device_lists[alice.userId]?.device_list?.version).toBe(7);
      expect(answer.failures?.['hs1.test']).toMatchObject({ code: 'PARLEY_UNAVAILABLE' });
    } finally {
      await hs1.start();
    }
    alice = reconnect(alice, hs1);
  }, 60_000);

  it('privacy (real MLS through the servers): the plaintext of the conversation and attachment is nowhere in any database or media store', async () => {
    // Three devices run the sdk's MLS (ts-mls, ciphersuite 3) against these servers: signed
    // device lists and key packages through the key API, the group built by a commit the host
    // sequences and Welcomes sent to-device, then messages and an attachment encrypted on the
    // device. The marker exists only in the devices' memory.
    const marker = `PARLEY-PLAINTEXT-MARKER-${randomUUID()}`;
    const people = [alice, bob, carol];
    const devices = new Map<string, CryptoDevice>();
    for (const p of people) {
      const d = await CryptoDevice.open({
        store: new MemoryCryptoStore(),
        userId: p.userId,
        deviceId: p.client.session?.device_id as string,
      });
      await d.createUserSigningKey();
      await p.client.request('PUT', '/api/v1/keys/device_list', await d.signDeviceList([d.ownSignedDevice()], 100));
      const count = await p.client.request<{ one_time_remaining: number; has_last_resort: boolean }>('GET', '/api/v1/keys/count');
      const upload = await d.keyPackages.refill({ one_time_remaining: 0, has_last_resort: count.has_last_resort }, 3, 3);
      await p.client.request('POST', '/api/v1/keys/upload', { key_packages: upload?.key_packages ?? [] });
      devices.set(p.userId, d);
    }
    const dev = (p: Person) => devices.get(p.userId) as CryptoDevice;
    // Every device trusts the lists it fetched through its own server (its pins).
    for (const p of people) {
      const lists = await p.client.request<DeviceKeysQueryResponse>('POST', '/api/v1/keys/query', { users: people.map((q) => q.userId) });
      for (const q of people) {
        const check = await dev(p).trustDeviceList(lists.device_lists[q.userId]?.device_list as SignedDeviceList, q.userId);
        expect(check.ok, `${p.userId} trusts ${q.userId}`).toBe(true);
      }
    }
    const { room_id: secret } = await alice.rooms.create({ visibility: 'private', invite: [bob.userId, carol.userId], encrypted: true });
    await bob.rooms.join(secret);
    await carol.rooms.join(secret);
    await dev(alice).createGroup(secret);
    const claimed = await alice.client.request<KeyClaimResponse>('POST', '/api/v1/keys/claim', {
      users: { [bob.userId]: [bob.client.session?.device_id], [carol.userId]: [carol.client.session?.device_id] },
    });
    const kps = [bob, carol].map((p) => claimed.key_packages[p.userId]?.[p.client.session?.device_id as string]?.key_package as string);
    const prepared = await dev(alice).prepareCommit(secret, { add: kps });
    await alice.rooms.send(secret, 'room.mls.commit', prepared.content as unknown as Record<string, unknown>);
    await dev(alice).confirmCommit(secret);
    const epoch = prepared.content.epoch + 1;
    for (const p of [bob, carol]) {
      const since = (await syncFrom(p.client)).next;
      await alice.client.request('PUT', `/api/v1/send_to_device/mls.welcome/${randomUUID()}`, {
        messages: { [p.userId]: { [p.client.session?.device_id as string]: { room_id: secret, epoch, welcome: prepared.welcome } } },
      });
      let welcome: string | undefined;
      await until(async () => {
        const f = (await syncFrom(p.client, since)).frames.find((x) => x.kind === 'to_device' && x.data.type === 'mls.welcome');
        welcome = f?.kind === 'to_device' ? (f.data.content.welcome as string) : undefined;
        return welcome !== undefined;
      }, 30_000);
      expect(await dev(p).joinFromWelcome(secret, welcome as string)).toMatchObject({ ok: true, epoch });
    }
    // An attachment, encrypted on bob's device; its key travels only inside his encrypted message.
    const attachment = new TextEncoder().encode(`${marker} attachment ${randomBytes(32).toString('hex')}`);
    const sealed = encryptAttachment(attachment);
    const upload = await uploadMedia(bob.client, sealed.ciphertext, { contentType: 'application/octet-stream' });
    const said = [
      [alice, `${marker} hello`],
      [bob, JSON.stringify({ body: `${marker} the file`, url: upload.content_uri, file: sealed.info })],
      [carol, `${marker} thanks`],
    ] as const;
    const sent: string[] = [];
    for (const [p, text] of said) {
      const content = await dev(p).encrypt(secret, new TextEncoder().encode(text));
      sent.push(content.ciphertext);
      await p.rooms.send(secret, 'room.encrypted', content as unknown as Record<string, unknown>);
    }
    // Every device reads every message (the crypto really ran end to end through the servers).
    for (const p of people) {
      await until(
        async () => (await p.rooms.messages(secret, { limit: 20 })).chunk.filter((e) => e.type === 'room.encrypted').length === 3,
      );
      const events = (await p.rooms.messages(secret, { limit: 20, dir: 'f' })).chunk.filter((e) => e.type === 'room.encrypted');
      for (const [i, e] of events.entries()) {
        const [author, text] = said[i] as (typeof said)[number];
        if (author === p) continue; // MLS does not decrypt one's own messages
        const r = await dev(p).decrypt(secret, e.content as unknown as EncryptedContent);
        expect(r.ok && new TextDecoder().decode(r.plaintext)).toBe(text);
      }
    }
    const needle = Buffer.from(marker);
    const attachmentHead = Buffer.from(attachment.subarray(0, 48));
    for (const server of fed.servers) {
      const { stdout } = await promisify(execFile)('pg_dump', ['--data-only', server.database.url], {
        maxBuffer: 256 * 1024 * 1024,
        encoding: 'buffer',
      });
      const dump = stdout as unknown as Buffer;
      // The dump holds the conversation (as ciphertext): the search below can see events.
      for (const c of sent) expect(dump.includes(Buffer.from(c)), `${server.name} holds the ciphertext`).toBe(true);
      expect(dump.includes(needle), `${server.name} database`).toBe(false);
      expect(dump.includes(attachmentHead), `${server.name} database`).toBe(false);
      const mediaDir = path.join(server.running.config.data_dir, 'media');
      for (const file of await listFiles(mediaDir)) {
        const bytes = await readFile(file);
        expect(bytes.includes(needle), file).toBe(false);
        expect(bytes.includes(attachmentHead), file).toBe(false);
      }
    }
    // The check can see: the ciphertext the client uploaded is in bob's media store.
    const stored = await Promise.all((await listFiles(path.join(hs2.running.config.data_dir, 'media'))).map((f) => readFile(f)));
    expect(stored.some((b) => b.includes(Buffer.from(sealed.ciphertext.subarray(0, 48))))).toBe(true);
  }, 120_000);
});

async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  let entries: import('node:fs').Dirent[];
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return out;
  }
  for (const e of entries) {
    const full = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...(await listFiles(full)));
    else if (e.isFile()) out.push(full);
  }
  return out;
}
