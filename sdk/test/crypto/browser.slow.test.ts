import { existsSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { type Browser, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// The crypto in a real browser (Debian's Chromium): the bundle the web client would load,
// WebCrypto Ed25519 as signer, and IndexedDB as the store — a page reload loses nothing.

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const ENTRY = fileURLToPath(new URL('../../src/crypto/index.ts', import.meta.url));

describe.skipIf(!existsSync(CHROMIUM))('sdk crypto in Chromium', () => {
  let server: Server;
  let origin: string;
  let browser: Browser;
  beforeAll(async () => {
    const bundle = await build({
      entryPoints: [ENTRY],
      bundle: true,
      format: 'iife',
      globalName: 'parleyCrypto',
      platform: 'browser',
      write: false,
      external: ['node:*'],
      logLevel: 'silent',
    });
    const js = bundle.outputFiles[0]?.text ?? '';
    const workerBundle = await build({
      stdin: {
        contents: `import { CryptoDevice, IndexedDbCryptoStore, serveCryptoDevice } from ${JSON.stringify(ENTRY)};
          serveCryptoDevice(self, (o, isRoomMember) => CryptoDevice.open({ ...o, store: new IndexedDbCryptoStore(o.storeName), isRoomMember }));`,
        resolveDir: fileURLToPath(new URL('.', import.meta.url)),
        loader: 'ts',
      },
      bundle: true,
      format: 'iife',
      platform: 'browser',
      write: false,
      external: ['node:*'],
      logLevel: 'silent',
    });
    const workerJs = workerBundle.outputFiles[0]?.text ?? '';
    server = createServer((req, res) => {
      if (req.url === '/crypto.js' || req.url === '/worker.js') {
        res.writeHead(200, { 'content-type': 'text/javascript' });
        res.end(req.url === '/crypto.js' ? js : workerJs);
      } else {
        res.writeHead(200, { 'content-type': 'text/html' });
        res.end('<!doctype html><script src="/crypto.js"></script>');
      }
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  }, 120_000);
  afterAll(async () => {
    await browser?.close();
    await new Promise((resolve) => server?.close(resolve));
  });

  it('two devices in one page build a group in IndexedDB; after a reload they decrypt and answer', async () => {
    const page = await browser.newPage();
    await page.goto(origin);
    const first = await page.evaluate(async () => {
      const c = (globalThis as never as { parleyCrypto: typeof import('../../src/crypto/index.js') }).parleyCrypto;
      const open = (userId: string) => c.CryptoDevice.open({ store: new c.IndexedDbCryptoStore(`dev-${userId}`), userId, deviceId: 'WEB' });
      const alice = await open('@alice:a.test');
      const bob = await open('@bob:b.test');
      await alice.createUserSigningKey();
      await bob.createUserSigningKey();
      for (const d of [alice, bob]) for (const o of [alice, bob]) await d.pinUserKey(o.userId, o.userSigningKey as Uint8Array);
      await alice.createGroup('!web:a.test');
      const upload = await bob.keyPackages.refill({ one_time_remaining: 0, has_last_resort: true }, 2, 2);
      const add = await alice.prepareCommit('!web:a.test', { add: [upload?.key_packages?.[0] as string] });
      await alice.confirmCommit('!web:a.test');
      const joined = await bob.joinFromWelcome('!web:a.test', add.welcome as string);
      const sent = await alice.encrypt('!web:a.test', new TextEncoder().encode('hello from the browser'));
      return { signer: alice.signer, joined: joined.ok, sent };
    });
    expect(first).toMatchObject({ signer: 'webcrypto', joined: true });

    await page.reload();
    const second = await page.evaluate(async (sent) => {
      const c = (globalThis as never as { parleyCrypto: typeof import('../../src/crypto/index.js') }).parleyCrypto;
      const open = (userId: string) => c.CryptoDevice.open({ store: new c.IndexedDbCryptoStore(`dev-${userId}`), userId, deviceId: 'WEB' });
      const alice = await open('@alice:a.test');
      const bob = await open('@bob:b.test');
      const got = await bob.decrypt('!web:a.test', sent);
      const reply = await alice.decrypt('!web:a.test', await bob.encrypt('!web:a.test', new TextEncoder().encode('hi back')));
      return {
        epochs: [await alice.epoch('!web:a.test'), await bob.epoch('!web:a.test')],
        got: got.ok ? new TextDecoder().decode(got.plaintext) : got.reason,
        reply: reply.ok ? new TextDecoder().decode(reply.plaintext) : reply.reason,
        again: (await bob.decrypt('!web:a.test', sent)).ok,
      };
    }, first.sent);
    expect(second).toEqual({ epochs: [1, 1], got: 'hello from the browser', reply: 'hi back', again: false });
    await page.close();
  }, 120_000);

  it('a device in a Web Worker (IndexedDB there) decrypts for the page, and its failures keep their reasons', async () => {
    const page = await browser.newPage();
    await page.goto(origin);
    const out = await page.evaluate(async () => {
      const c = (globalThis as never as { parleyCrypto: typeof import('../../src/crypto/index.js') }).parleyCrypto;
      const worker = new c.CryptoWorkerClient(new Worker('/worker.js'));
      await worker.open({ storeName: 'worker-carol', userId: '@carol:c.test', deviceId: 'WORKER' });
      const carol = worker.device;
      const dave = await c.CryptoDevice.open({ store: new c.IndexedDbCryptoStore('page-dave'), userId: '@dave:d.test', deviceId: 'PAGE' });
      const carolKey = (await carol.createUserSigningKey()).publicKey;
      await dave.createUserSigningKey();
      await carol.pinUserKey('@dave:d.test', dave.userSigningKey as Uint8Array);
      await dave.pinUserKey('@carol:c.test', carolKey);
      await carol.createGroup('!worker:c.test');
      const kp = (await dave.keyPackages.refill({ one_time_remaining: 0, has_last_resort: true }, 1, 1))?.key_packages?.[0] as string;
      const add = await carol.prepareCommit('!worker:c.test', { add: [kp] });
      await carol.confirmCommit('!worker:c.test');
      await dave.joinFromWelcome('!worker:c.test', add.welcome as string);
      const got = await carol.decrypt('!worker:c.test', await dave.encrypt('!worker:c.test', new TextEncoder().encode('to the worker')));
      await worker.setRoomMembers('!worker:c.test', ['@carol:c.test']);
      const refused = await carol.decrypt(
        '!worker:c.test',
        await dave.encrypt('!worker:c.test', new TextEncoder().encode('after leaving')),
      );
      const err = await carol.encrypt('!nowhere:c.test', new Uint8Array(1)).catch((e: { name: string; reason: string }) => e);
      return {
        signer: (await worker.info()).signer,
        got: got.ok ? new TextDecoder().decode(got.plaintext) : got.reason,
        refused: refused.ok ? 'decrypted' : refused.reason,
        err: [(err as { name: string }).name, (err as { reason: string }).reason],
      };
    });
    expect(out).toEqual({
      signer: 'webcrypto',
      got: 'to the worker',
      refused: 'not_member',
      err: ['CryptoFailureError', 'missing_welcome'],
    });
    await page.close();
  }, 120_000);
});
