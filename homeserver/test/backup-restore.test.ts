import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { downloadMedia, type ParleyClient, RoomsApi, uploadMedia } from '@parley/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../src/config.js';
import { createDb, migrateLatest } from '../src/db/database.js';
import { createLogger } from '../src/logger.js';
import { backup, readBackup, restore } from '../src/ops/backup.js';
import { type RunningHomeserver, startHomeserver } from '../src/server.js';
import { RoomVerifier } from '../src/services/room-verify.js';
import { opaque } from './support/e2e.js';
import { freePort, until } from './support/net.js';
import { createTestDatabase, type TestDatabase } from './support/postgres.js';
import { startTestServer, type TestServer, testConfig } from './support/server.js';

const bodies = async (rooms: RoomsApi, roomId: string): Promise<string[]> => {
  const out: string[] = [];
  let from: string | undefined;
  for (;;) {
    const page = await rooms.messages(roomId, { limit: 100, dir: 'f', ...(from ? { from } : {}) });
    for (const e of page.chunk) if (typeof e.content.body === 'string') out.push(e.content.body);
    if (!page.end) return out;
    from = page.end;
  }
};

/**
 * `parley backup` of a server that keeps taking messages, restored onto a fresh database and
 * data directory: the restored server is the same server (same keys, same TLS certificate,
 * so a peer that pinned it talks to it at once) and holds every account, room, message and
 * media file that was acknowledged before the backup began.
 */
describe('backup and restore', () => {
  let hs1: TestServer;
  let hs2: TestServer;
  let restored: RunningHomeserver | null = null;
  let restoredDb: TestDatabase;
  let restoredDir: string;
  let backupDir: string;
  let alice: RoomsApi;
  let aliceClient: ParleyClient;
  let bob: RoomsApi;
  let roomId: string;
  let mediaUri: string;
  const image = new Uint8Array(Array.from({ length: 5000 }, (_, i) => (i * 31) % 256));
  let ackedBeforeBackup: string[] = [];
  let statics: Record<string, string>;
  const keyBackup = opaque(2000);
  // The file an operator's server would run with (the test server's config is built in memory).
  const configText = 'server_name: hs1.test\nregistration: { mode: token }\n';
  let configFile: string;

  beforeAll(async () => {
    const [p1, p2] = [await freePort(), await freePort()];
    statics = { 'hs1.test': `127.0.0.1:${p1}`, 'hs2.test': `127.0.0.1:${p2}` };
    hs1 = await startTestServer({ server_name: 'hs1.test', federation: { port: p1, static_servers: statics } });
    hs2 = await startTestServer({ server_name: 'hs2.test', federation: { port: p2, static_servers: statics } });
    aliceClient = hs1.client();
    await aliceClient.register({ username: 'alice', password: 'alice password' });
    alice = new RoomsApi(aliceClient);
    const bobClient = hs2.client();
    await bobClient.register({ username: 'bob', password: 'bob password' });
    bob = new RoomsApi(bobClient);
    ({ room_id: roomId } = await alice.create({ visibility: 'public', name: 'Kept' }));
    await bob.join(roomId);
    await bob.sendText(roomId, 'bob was here');
    mediaUri = (await uploadMedia(aliceClient, image, { filename: 'pattern.bin', contentType: 'application/octet-stream' })).content_uri;
    for (let i = 0; i < 20; i++) await alice.sendText(roomId, `before ${i}`);
    // Users' E2E key material: this device's key packages and the account's key backup.
    await aliceClient.request('POST', '/api/v1/keys/upload', { key_packages: [opaque(), opaque()], last_resort: opaque() });
    await aliceClient.request('PUT', '/api/v1/keys/backup', { ciphertext: keyBackup, algorithm: 'test.v1', expected_version: null });
    backupDir = path.join(await mkdtemp(path.join(tmpdir(), 'parley-backup-')), 'snapshot');
    restoredDir = await mkdtemp(path.join(tmpdir(), 'parley-restored-'));
    restoredDb = await createTestDatabase();
    configFile = path.join(path.dirname(backupDir), 'parley.yaml');
    await writeFile(configFile, configText);
  });
  afterAll(async () => {
    await restored?.stop();
    await hs2?.close();
    await hs1?.close().catch(() => {});
    await restoredDb?.drop();
    await rm(restoredDir, { recursive: true, force: true });
    await rm(path.dirname(backupDir), { recursive: true, force: true });
  });

  it('backs up a server while it takes messages', async () => {
    ackedBeforeBackup = await bodies(alice, roomId);
    // Traffic during the backup: sends keep being acknowledged while the snapshot is read.
    let sending = true;
    let sent = 0;
    const traffic = (async () => {
      while (sending && sent < 200) await alice.sendText(roomId, `during ${sent++}`);
    })();
    const t0 = performance.now();
    const summary = await backup(hs1.config, hs1.services.db, backupDir, { configFile });
    const backupMs = performance.now() - t0;
    sending = false;
    await traffic;
    expect(summary.tables).toBeGreaterThan(10);
    expect(summary.rows).toBeGreaterThan(ackedBeforeBackup.length);
    const manifest = await readBackup(backupDir);
    expect(manifest.server_name).toBe('hs1.test');
    expect(manifest.files.map((f) => f.path.split('/')[0]).sort()).toEqual(expect.arrayContaining(['config', 'keys', 'media', 'tls']));
    expect(await readFile(path.join(backupDir, 'config/parley.yaml'), 'utf8')).toBe(configText);
    expect(JSON.stringify(manifest)).not.toContain('alice password');
    console.log(
      `backup figures: ${summary.rows} rows, ${summary.files} files, ${(summary.bytes / 1024).toFixed(0)} KiB in ${backupMs.toFixed(0)} ms while serving`,
    );
  });

  it('refuses a damaged backup before touching anything', async () => {
    const manifest = await readBackup(backupDir);
    const victim = path.join(backupDir, manifest.tables.find((t) => t.name === 'events')?.file as string);
    const original = await readFile(victim);
    const damaged = Buffer.from(original);
    damaged[damaged.length - 5] = (damaged[damaged.length - 5] as number) ^ 0xff;
    await writeFile(victim, damaged);
    await expect(readBackup(backupDir)).rejects.toThrow(/damaged.*events/);
    await writeFile(victim, original);
  });

  it('refuses to restore under another server name or into a database with users', async () => {
    const db = createDb(restoredDb.url, 2);
    try {
      const other = { ...testConfig(restoredDb.url, restoredDir), server_name: 'elsewhere.test' } as Config;
      await expect(restore(other, db, backupDir)).rejects.toThrow(/backup is of hs1\.test/);
      // The source server's own database already has users.
      await expect(restore(hs1.config, hs1.services.db, backupDir)).rejects.toThrow(/not empty|already has users/);
    } finally {
      await db.destroy();
    }
    expect(existsSync(path.join(restoredDir, 'keys'))).toBe(false);
  });

  it('restores onto a fresh data directory as the same server, with everything acknowledged before the backup', async () => {
    const oldFingerprint = hs1.federation?.context.tls.fingerprint;
    const oldKeyId = hs1.services.identity.keyId;
    const fedPort = Number(statics['hs1.test']?.split(':')[1]);
    await hs1.stop();

    const config = testConfig(restoredDb.url, restoredDir, {
      server_name: 'hs1.test',
      federation: { port: fedPort, static_servers: statics },
    });
    const db = createDb(restoredDb.url, 2);
    try {
      const t0 = performance.now();
      const summary = await restore(config, db, backupDir);
      expect(summary.rows).toBeGreaterThan(0);
      // The configuration file stays in the backup for the operator; nothing writes it elsewhere.
      expect(summary.configFile).toBe(path.join(backupDir, 'config/parley.yaml'));
      expect(existsSync(path.join(restoredDir, 'config'))).toBe(false);
      console.log(`restore figures: ${summary.rows} rows, ${summary.files} files in ${(performance.now() - t0).toFixed(0)} ms`);
      await migrateLatest(db);
    } finally {
      await db.destroy();
    }
    restored = await startHomeserver(config, { log: createLogger('silent') });
    expect(restored.services.identity.keyId).toBe(oldKeyId);
    expect(restored.federation?.context.tls.fingerprint).toBe(oldFingerprint);

    // Accounts: the old password still works.
    const { ParleyClient } = await import('@parley/sdk');
    const again = new ParleyClient({ baseUrl: restored.url });
    await again.login({ username: 'alice', password: 'alice password' });
    const rooms = new RoomsApi(again);
    const after = await bodies(rooms, roomId);
    // Everything acknowledged before the backup began is there, and what was sent during it
    // is a prefix of the sends (one consistent snapshot: no holes).
    expect(after.slice(0, ackedBeforeBackup.length)).toEqual(ackedBeforeBackup);
    const during = after.slice(ackedBeforeBackup.length);
    expect(during).toEqual(during.map((_, i) => `during ${i}`));

    // The device's session and its E2E keys: the old access token works, its key packages
    // and the account's key backup are there.
    const sameDevice = new ParleyClient({ baseUrl: restored.url, session: aliceClient.session });
    expect(await sameDevice.request('GET', '/api/v1/keys/count')).toMatchObject({ one_time_remaining: 2, has_last_resort: true });
    expect(await sameDevice.request('GET', '/api/v1/keys/backup')).toMatchObject({
      version: 1,
      ciphertext: keyBackup,
      algorithm: 'test.v1',
    });

    // Media bytes.
    const media = await downloadMedia(again, mediaUri);
    expect(Buffer.from(media.data).equals(Buffer.from(image))).toBe(true);

    // The log verifies under the same key.
    const verifier = new RoomVerifier(
      restored.services.roomRepo,
      restored.services.eventRepo,
      restored.services.identity,
      restored.federation?.context.keyStore,
    );
    expect(await verifier.verify(roomId)).toMatchObject({ ok: true });

    // A peer that pinned hs1 before talks to the restored server without re-pinning.
    await bob.sendText(roomId, 'bob after the restore');
    await until(async () => (await bodies(rooms, roomId)).includes('bob after the restore'));
  });
});
