import { existsSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { type Browser, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// The sdk's MailboxClient in a real browser (Debian's Chromium), from a page on another
// origin than the mailbox server, so CORS, fetch and WebCrypto randomness are the browser's.

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const ENTRY = fileURLToPath(new URL('../src/mailbox.ts', import.meta.url));
// A path in a variable, so the sdk's typecheck does not walk into the homeserver package.
const HOMESERVER_SUPPORT = fileURLToPath(new URL('../../homeserver/test/support/server.ts', import.meta.url));

interface TestServer {
  url: string;
  close(): Promise<void>;
}

describe.skipIf(!existsSync(CHROMIUM))('sdk mailbox in Chromium', () => {
  let page: Server;
  let origin: string;
  let browser: Browser;
  let homeserver: TestServer;
  beforeAll(async () => {
    const support = (await import(HOMESERVER_SUPPORT)) as { startTestServer(): Promise<TestServer> };
    homeserver = await support.startTestServer();
    const bundle = await build({
      entryPoints: [ENTRY],
      bundle: true,
      format: 'iife',
      globalName: 'parleyMailbox',
      platform: 'browser',
      write: false,
      logLevel: 'silent',
    });
    const js = bundle.outputFiles[0]?.text ?? '';
    page = createServer((req, res) => {
      res.writeHead(200, { 'content-type': req.url === '/mailbox.js' ? 'text/javascript' : 'text/html' });
      res.end(req.url === '/mailbox.js' ? js : '<!doctype html><script src="/mailbox.js"></script>');
    });
    await new Promise<void>((resolve) => page.listen(0, '127.0.0.1', resolve));
    origin = `http://127.0.0.1:${(page.address() as AddressInfo).port}`;
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  }, 120_000);
  afterAll(async () => {
    await browser?.close();
    await new Promise((resolve) => page?.close(resolve));
    await homeserver?.close();
  });

  it('creates a queue, sends, receives and acknowledges across origins', async () => {
    const tab = await browser.newPage();
    await tab.goto(origin);
    const result = await tab.evaluate(async (base) => {
      const m = (globalThis as never as { parleyMailbox: typeof import('../src/mailbox.js') }).parleyMailbox;
      const client = new m.MailboxClient();
      const queue = await client.createQueue(base);
      // A sender of its own learns the block size from GET /mailbox/v1/limits (cross-origin) and pads to it.
      await new m.MailboxClient().send(base, queue.sendId, new TextEncoder().encode('contact request'));
      const first = await client.receive(queue);
      for (const b of first.blobs) await client.ack(queue, b.msgId);
      const after = await client.receive(queue);
      await client.deleteQueue(queue);
      return { texts: first.blobs.map((b) => new TextDecoder().decode(b.data)), left: after.blobs.length };
    }, homeserver.url);
    expect(result).toEqual({ texts: ['contact request'], left: 0 });
  });
});
