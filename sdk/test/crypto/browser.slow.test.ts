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
    server = createServer((req, res) => {
      if (req.url === '/crypto.js') {
        res.writeHead(200, { 'content-type': 'text/javascript' });
        res.end(js);
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
});
