import type { KeyClaimResponse, KeyCountResponse, SyncResponse } from '@parley/schemas';
import type { ParleyClient } from '@parley/sdk';
import { RoomsApi } from '@parley/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RoomVerifier } from '../src/services/room-verify.js';
import { newUserKey, opaque, signedList } from './support/e2e.js';
import { ManualClock, startTestServer, type TestServer } from './support/server.js';

// Issue 12 (server side of E2E): key packages, signed device lists, key backup and the MLS
// room rules, against one real server. Everything MLS is random bytes here: the server never
// parses it, and these tests are about what the server does with it.

const claim = (c: ParleyClient, users: Record<string, string[]>) => c.request<KeyClaimResponse>('POST', '/api/v1/keys/claim', { users });
const upload = (c: ParleyClient, body: Record<string, unknown>) => c.request<KeyCountResponse>('POST', '/api/v1/keys/upload', body);
const syncFrom = (c: ParleyClient, since?: number) =>
  c.request<SyncResponse>('GET', `/api/v1/sync?timeout=0${since === undefined ? '' : `&since=${since}`}`);

describe('E2E keys (issue 12)', () => {
  let server: TestServer;
  let alice: ParleyClient;
  let bob: ParleyClient;
  let bobPhone: ParleyClient;
  let aliceId: string;
  let bobId: string;
  beforeAll(async () => {
    server = await startTestServer();
    alice = server.client();
    aliceId = (await alice.register({ username: 'alice', password: 'alice password' })).user_id;
    bob = server.client();
    bobId = (await bob.register({ username: 'bob', password: 'bob password', device_name: 'laptop' })).user_id;
    bobPhone = server.client();
    await bobPhone.login({ username: 'bob', password: 'bob password', device_name: 'phone' });
  });
  afterAll(() => server?.close());

  describe('key packages', () => {
    it('hands each one-time package out once, then the last-resort one, with the remaining count', async () => {
      const packages = Array.from({ length: 3 }, () => opaque());
      const lastResort = opaque();
      expect(await upload(bob, { key_packages: packages, last_resort: lastResort })).toEqual({
        one_time_remaining: 3,
        has_last_resort: true,
        low_water_mark: 10,
      });
      const device = bob.session?.device_id as string;
      const got: string[] = [];
      for (const remaining of [2, 1, 0]) {
        const answer = await claim(alice, { [bobId]: [device] });
        const one = answer.key_packages[bobId]?.[device];
        expect(one).toMatchObject({ last_resort: false, remaining });
        got.push(one?.key_package as string);
      }
      expect(got.sort()).toEqual([...packages].sort());
      // Exhausted: the last-resort package, every time, and it is not used up.
      for (let i = 0; i < 2; i++) {
        const answer = await claim(alice, { [bobId]: [device] });
        expect(answer.key_packages[bobId]?.[device]).toEqual({ key_package: lastResort, last_resort: true, remaining: 0 });
      }
      expect(await bob.request('GET', '/api/v1/keys/count')).toEqual({ one_time_remaining: 0, has_last_resort: true, low_water_mark: 10 });
    });

    it('two concurrent claims never get the same one-time package', async () => {
      const packages = Array.from({ length: 20 }, () => opaque(200));
      await upload(bobPhone, { key_packages: packages, last_resort: opaque() });
      const device = bobPhone.session?.device_id as string;
      const claimers = await Promise.all(
        Array.from({ length: 3 }, async (_, i) => {
          const c = server.client();
          await c.register({ username: `claimer${i}`, password: 'claimer password' });
          return c;
        }),
      );
      const answers = await Promise.all(
        Array.from({ length: 30 }, (_, i) => claim(claimers[i % claimers.length] as ParleyClient, { [bobId]: [device] })),
      );
      const claimed = answers.map((a) => a.key_packages[bobId]?.[device]);
      const oneTime = claimed.filter((c) => c && !c.last_resort).map((c) => c?.key_package);
      expect(oneTime).toHaveLength(20);
      expect(new Set(oneTime).size).toBe(20);
      expect(new Set(oneTime)).toEqual(new Set(packages));
      expect(claimed.filter((c) => c?.last_resort)).toHaveLength(10);
    });

    it('an empty device list claims every device of the user; re-uploading the same bytes stores one copy', async () => {
      const same = opaque();
      await upload(bob, { key_packages: [same] });
      expect((await upload(bob, { key_packages: [same] })).one_time_remaining).toBe(1);
      const answer = await claim(alice, { [bobId]: [] });
      expect(Object.keys(answer.key_packages[bobId] ?? {}).sort()).toEqual(
        [bob.session?.device_id as string, bobPhone.session?.device_id as string].sort(),
      );
      expect(answer.key_packages[bobId]?.[bob.session?.device_id as string]?.key_package).toBe(same);
    });

    it('refuses bad uploads with a 4xx naming the field, and caps what a device holds', async () => {
      await expect(upload(alice, { key_packages: ['not base64url!'] })).rejects.toMatchObject({ status: 400, field: 'key_packages.0' });
      await expect(upload(alice, { key_packages: ['x'.repeat(20_000)] })).rejects.toMatchObject({ status: 400 });
      await expect(upload(alice, { key_packages: Array.from({ length: 101 }, () => opaque(10)) })).rejects.toMatchObject({ status: 400 });
      await expect(upload(alice, { surprise: 1 })).rejects.toMatchObject({ status: 400, field: 'surprise' });
      await upload(alice, { key_packages: Array.from({ length: 100 }, () => opaque(10)) });
      await upload(alice, { key_packages: Array.from({ length: 100 }, () => opaque(10)) });
      await expect(upload(alice, { key_packages: [opaque(10)] })).rejects.toMatchObject({
        status: 400,
        code: 'PARLEY_TOO_MANY_KEY_PACKAGES',
      });
      await expect(claim(alice, { 'not-a-user': [] })).rejects.toMatchObject({ status: 400 });
    });

    it('tells the device (durably, on its own stream) when claims take it below the low-water mark and when it runs out', async () => {
      const watch = server.client();
      await watch.login({ username: 'bob', password: 'bob password', device_name: 'watch' });
      const watchId = watch.session?.device_id as string;
      const since = (await syncFrom(watch)).next;
      await upload(watch, { key_packages: Array.from({ length: 11 }, () => opaque(50)), last_resort: opaque(50) });
      for (let i = 0; i < 13; i++) await claim(alice, { [bobId]: [watchId] });
      const low = (await syncFrom(watch, since)).frames.filter((f) => f.kind === 'to_device' && f.data.type === 'parley.key_packages_low');
      expect(low.map((f) => (f.kind === 'to_device' ? f.data.content : null))).toEqual([
        { one_time_remaining: 9, low_water_mark: 10 },
        { one_time_remaining: 0, low_water_mark: 10 },
      ]);
      // Only the device itself hears of it.
      const others = (await syncFrom(bobPhone, since)).frames.filter((f) => f.kind === 'to_device');
      expect(others).toEqual([]);
    });

    it("a signed-out device's packages are gone: nobody adds it to a group any more", async () => {
      const tablet = server.client();
      await tablet.login({ username: 'bob', password: 'bob password', device_name: 'tablet' });
      const tabletId = tablet.session?.device_id as string;
      await upload(tablet, { key_packages: [opaque()], last_resort: opaque() });
      await tablet.logout();
      expect((await claim(alice, { [bobId]: [tabletId] })).key_packages[bobId]?.[tabletId]).toBeUndefined();
    });
  });

  describe('signed device lists', () => {
    it('a burst of device sign-ins larger than the database pool completes (no read waits for a second connection inside its transaction)', async () => {
      // Each sign-in or sign-out announces the device list in a transaction. Its reads went to
      // the pool instead of the transaction, so a burst held every connection (5 in tests)
      // while each waited for one more: all failed after the 10 s acquire timeout, and every
      // other request answered 503 meanwhile (bench join-large's set-up).
      const burst = Array.from({ length: 12 }, (_, i) => server.services.keys.deviceLists.devicesChanged(i % 2 ? aliceId : bobId));
      await expect(Promise.all(burst)).resolves.toHaveLength(12);
    });

    it('stores a signed list, only ever moving forward; a change reaches room peers as a device_list frame', async () => {
      const rooms = new RoomsApi(alice);
      const { room_id } = await rooms.create({ visibility: 'private', invite: [bobId] });
      await new RoomsApi(bob).join(room_id);
      const since = (await syncFrom(alice)).next;
      const key = newUserKey();
      const devices = [bob.session?.device_id as string, bobPhone.session?.device_id as string];
      const v1 = signedList(bobId, key, devices, 1);
      expect(await bob.request('PUT', '/api/v1/keys/device_list', v1)).toEqual({ version: 1 });
      // The same list again is fine (a retry); a different one with the same version is not.
      expect(await bob.request('PUT', '/api/v1/keys/device_list', v1)).toEqual({ version: 1 });
      await expect(bob.request('PUT', '/api/v1/keys/device_list', signedList(bobId, key, devices, 1))).rejects.toMatchObject({
        status: 409,
        code: 'PARLEY_VERSION_ROLLBACK',
      });
      const v3 = signedList(bobId, key, devices, 3);
      await bob.request('PUT', '/api/v1/keys/device_list', v3);
      await expect(bob.request('PUT', '/api/v1/keys/device_list', signedList(bobId, key, devices, 2))).rejects.toMatchObject({
        status: 409,
        code: 'PARLEY_VERSION_ROLLBACK',
      });
      const answer = await alice.request('GET', `/api/v1/keys/device_list/${encodeURIComponent(bobId)}`);
      expect(answer).toEqual({ user_id: bobId, device_list: v3, devices: expect.arrayContaining(devices) });
      expect((await alice.request('POST', '/api/v1/keys/query', { users: [bobId, aliceId] })) as unknown).toMatchObject({
        device_lists: { [bobId]: { device_list: v3 }, [aliceId]: { device_list: null } },
      });
      const frames = (await syncFrom(alice, since)).frames.filter((f) => f.kind === 'device_list');
      expect(frames.map((f) => f.data)).toContainEqual({ user_id: bobId });
    });

    it('refuses a list whose signature does not verify, or that is not the caller’s', async () => {
      const key = newUserKey();
      const list = signedList(bobId, key, ['x'], 10);
      const tampered = { ...list, devices: [...list.devices, { ...(list.devices[0] as (typeof list.devices)[0]), device_id: 'evil' }] };
      await expect(bob.request('PUT', '/api/v1/keys/device_list', tampered)).rejects.toMatchObject({ status: 400, field: 'signature' });
      const other = signedList(bobId, newUserKey(), ['x'], 11);
      await expect(bob.request('PUT', '/api/v1/keys/device_list', { ...other, user_signing_key: key.publicKey })).rejects.toMatchObject({
        status: 400,
      });
      await expect(alice.request('PUT', '/api/v1/keys/device_list', list)).rejects.toMatchObject({ status: 403 });
    });

    it('a new device signing in is a device-list change too', async () => {
      const since = (await syncFrom(bob)).next;
      const extra = server.client();
      await extra.login({ username: 'alice', password: 'alice password', device_name: 'second' });
      await expect
        .poll(async () => (await syncFrom(bob, since)).frames.some((f) => f.kind === 'device_list' && f.data.user_id === aliceId))
        .toBe(true);
      const answer = (await bob.request('GET', `/api/v1/keys/device_list/${encodeURIComponent(aliceId)}`)) as { devices: string[] };
      expect(answer.devices).toContain(extra.session?.device_id);
    });
  });

  describe('key backup', () => {
    it('is opaque and versioned: create, replace with the right version, conflict otherwise', async () => {
      await expect(alice.request('GET', '/api/v1/keys/backup')).rejects.toMatchObject({ status: 404 });
      const one = opaque(5000);
      expect(await alice.request('PUT', '/api/v1/keys/backup', { ciphertext: one, algorithm: 'test.v1', expected_version: null })).toEqual({
        version: 1,
        etag: '"v1"',
      });
      await expect(
        alice.request('PUT', '/api/v1/keys/backup', { ciphertext: opaque(), algorithm: 'test.v1', expected_version: null }),
      ).rejects.toMatchObject({ status: 409, code: 'PARLEY_BACKUP_CONFLICT' });
      await alice.request('PUT', '/api/v1/keys/backup', { ciphertext: opaque(), algorithm: 'test.v1', expected_version: 1 });
      // A second device that still thinks it is at version 1 loses and must merge.
      await expect(
        alice.request('PUT', '/api/v1/keys/backup', { ciphertext: opaque(), algorithm: 'test.v1', expected_version: 1 }),
      ).rejects.toMatchObject({ status: 409, code: 'PARLEY_BACKUP_CONFLICT', message: expect.stringContaining('version 2') });
      const res = await alice.requestRaw('PUT', '/api/v1/keys/backup', JSON.stringify({ ciphertext: one, algorithm: 'test.v2' }), {
        'content-type': 'application/json',
        'if-match': '"v2"',
      });
      expect(res.headers.get('etag')).toBe('"v3"');
      expect(await alice.request('GET', '/api/v1/keys/backup')).toMatchObject({ version: 3, ciphertext: one, algorithm: 'test.v2' });
      await expect(alice.request('PUT', '/api/v1/keys/backup', { ciphertext: one, algorithm: 'x' })).rejects.toMatchObject({
        status: 400,
        field: 'expected_version',
      });
      // Each user has their own.
      await expect(bob.request('GET', '/api/v1/keys/backup')).rejects.toMatchObject({ status: 404 });
    });
  });

  describe('encrypted rooms', () => {
    let roomId: string;
    let aliceRooms: RoomsApi;
    let bobRooms: RoomsApi;
    beforeAll(async () => {
      aliceRooms = new RoomsApi(alice);
      bobRooms = new RoomsApi(bob);
      roomId = (await aliceRooms.create({ visibility: 'private', invite: [bobId], encrypted: true })).room_id;
      await bobRooms.join(roomId);
    });

    it('is created encrypted and refuses plaintext with a clear 400; ciphertext goes through', async () => {
      const summary = (await aliceRooms.list()).find((r) => r.room_id === roomId);
      expect(summary?.encrypted).toBe(true);
      await expect(bobRooms.sendText(roomId, 'hello in the clear')).rejects.toMatchObject({ status: 400, code: 'PARLEY_ROOM_ENCRYPTED' });
      await expect(bobRooms.send(roomId, 'org.example.custom', { x: 1 })).rejects.toMatchObject({
        status: 400,
        code: 'PARLEY_ROOM_ENCRYPTED',
      });
      // Nothing may ride along in the clear next to the ciphertext.
      await expect(bobRooms.send(roomId, 'room.encrypted', { epoch: 0, ciphertext: opaque(), body: 'oops' })).rejects.toMatchObject({
        status: 400,
        field: 'content.body',
      });
      const sent = await bobRooms.send(roomId, 'room.encrypted', { epoch: 0, ciphertext: opaque() });
      expect(sent.seq).toBeGreaterThan(0);
    });

    it('room.encryption cannot be changed', async () => {
      await expect(aliceRooms.setState(roomId, 'room.encryption', { algorithm: 'mls.rfc9420.cs3' })).resolves.toMatchObject({});
      await expect(aliceRooms.setState(roomId, 'room.encryption', { algorithm: 'none' })).rejects.toMatchObject({ status: 400 });
    });

    it('a redaction of room.encryption does not undo it (issue 10 L9, checked here for E2E)', async () => {
      const encryption = (await aliceRooms.getState(roomId)).find((e) => e.type === 'room.encryption');
      await aliceRooms.redact(roomId, encryption?.event_id as string);
      const after = (await aliceRooms.getState(roomId)).find((e) => e.type === 'room.encryption');
      expect(after?.content).toEqual({ algorithm: 'mls.rfc9420.cs3' });
      expect((await aliceRooms.list()).find((r) => r.room_id === roomId)?.encrypted).toBe(true);
      await expect(bobRooms.sendText(roomId, 'still no plaintext')).rejects.toMatchObject({ status: 400, code: 'PARLEY_ROOM_ENCRYPTED' });
    });

    it('first commit wins each epoch; a stale one is refused with the current epoch; a non-member cannot commit', async () => {
      await aliceRooms.send(roomId, 'room.mls.commit', { epoch: 0, commit: opaque() });
      await expect(bobRooms.send(roomId, 'room.mls.commit', { epoch: 0, commit: opaque() })).rejects.toMatchObject({
        status: 409,
        code: 'PARLEY_MLS_STALE_EPOCH',
        message: expect.stringContaining('the room is at epoch 1'),
      });
      await expect(bobRooms.send(roomId, 'room.mls.commit', { epoch: 5, commit: opaque() })).rejects.toMatchObject({
        status: 409,
        code: 'PARLEY_MLS_STALE_EPOCH',
      });
      await bobRooms.send(roomId, 'room.mls.commit', { epoch: 1, commit: opaque() });
      await bobRooms.send(roomId, 'room.mls.proposal', { epoch: 2, proposal: opaque() });
      const stranger = server.client();
      await stranger.register({ username: 'stranger', password: 'stranger password' });
      await expect(new RoomsApi(stranger).send(roomId, 'room.mls.commit', { epoch: 2, commit: opaque() })).rejects.toMatchObject({
        status: 403,
      });
    });

    it('two concurrent commits for the same epoch: exactly one is sequenced, the other told to retry', async () => {
      const results = await Promise.allSettled([
        aliceRooms.send(roomId, 'room.mls.commit', { epoch: 2, commit: opaque() }),
        bobRooms.send(roomId, 'room.mls.commit', { epoch: 2, commit: opaque() }),
        aliceRooms.send(roomId, 'room.mls.commit', { epoch: 2, commit: opaque() }),
      ]);
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      const refused = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
      expect(refused.map((r) => r.reason.code)).toEqual(['PARLEY_MLS_STALE_EPOCH', 'PARLEY_MLS_STALE_EPOCH']);
      const commits = (await aliceRooms.messages(roomId, { limit: 50 })).chunk.filter((e) => e.type === 'room.mls.commit');
      expect(commits.map((e) => e.content.epoch).sort()).toEqual([0, 1, 2]);
    });

    it('commits need an encrypted room; the log verifies end to end with the epoch rule replayed', async () => {
      const plain = (await aliceRooms.create({ visibility: 'private' })).room_id;
      await expect(aliceRooms.send(plain, 'room.mls.commit', { epoch: 0, commit: opaque() })).rejects.toMatchObject({ status: 403 });
      const s = server.services;
      const report = await new RoomVerifier(s.roomRepo, s.eventRepo, s.identity).verify(roomId);
      expect(report).toMatchObject({ ok: true });
    });

    it('a redaction cannot take a commit away (the group would fork without it)', async () => {
      const commit = (await aliceRooms.messages(roomId, { limit: 50 })).chunk.find((e) => e.type === 'room.mls.commit');
      await aliceRooms.redact(roomId, commit?.event_id as string);
      const after = await aliceRooms.event(roomId, commit?.event_id as string);
      expect(after.content).toEqual(commit?.content);
      const s = server.services;
      expect(await new RoomVerifier(s.roomRepo, s.eventRepo, s.identity).verify(roomId)).toMatchObject({ ok: true });
    });
  });
});

describe('Welcomes wait for a device that is away (issue 12)', () => {
  let server: TestServer;
  const clock = new ManualClock();
  afterAll(() => server?.close());

  it('a device offline for a day gets its Welcome when it reconnects; past the stream retention it is told to resync', async () => {
    server = await startTestServer({}, clock);
    const alice = server.client();
    await alice.register({ username: 'alice', password: 'alice password' });
    const bob = server.client();
    const bobId = (await bob.register({ username: 'bob', password: 'bob password' })).user_id;
    const since = (await syncFrom(bob)).next;
    const welcome = { room_id: '!room:hs1.test', epoch: 1, welcome: opaque(1500) };
    await alice.request('PUT', `/api/v1/send_to_device/mls.welcome/${Date.now()}`, {
      messages: { [bobId]: { [bob.session?.device_id as string]: welcome } },
    });
    // A day passes; the server prunes its stream as it does every hour.
    clock.advance(25 * 3600_000);
    await server.services.streamRetention.prune();
    await bob.refresh();
    const back = await syncFrom(bob, since);
    expect(back.reset).toBe(false);
    const got = back.frames.filter((f) => f.kind === 'to_device' && f.data.type === 'mls.welcome');
    expect(got.map((f) => (f.kind === 'to_device' ? f.data.content : null))).toEqual([welcome]);
    // Beyond the retention window (7 days) the note is gone: the device is told to resync
    // (rejoin by external commit) instead of silently missing it.
    clock.advance(7 * 86_400_000);
    await server.services.streamRetention.prune();
    await bob.refresh();
    expect((await syncFrom(bob, since)).reset).toBe(true);
  });
});
