import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { type AddressInfo, connect, createServer, type Socket } from 'node:net';
import path from 'node:path';
import { crc32, deflateSync } from 'node:zlib';
import { type Browser, type BrowserContext, chromium, type Locator, type Page } from 'playwright-core';
import { type Federation, type FedServer, startFederation } from '../../homeserver/test/support/federation.js';

export const REPO = path.resolve(import.meta.dirname, '../..');
export const SHOTS = path.join(REPO, 'test-artifacts', 'screenshots');
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** Builds client-vue/dist if it is missing or stale (the server under test serves it). */
export function ensureClientBuilt(): void {
  execFileSync(process.execPath, [path.join(REPO, 'scripts', 'build-client.mjs')], { stdio: 'inherit' });
}

/** hs1.test and hs2.test federating over TLS on loopback, each serving the built client, and Chromium. */
export interface TwoServers {
  fed: Federation;
  hs1: FedServer;
  hs2: FedServer;
  browser: Browser;
}

export async function startTwoServers(): Promise<TwoServers> {
  ensureClientBuilt();
  const fed = await startFederation(['hs1.test', 'hs2.test']);
  const [hs1, hs2] = fed.servers as [FedServer, FedServer];
  return { fed, hs1, hs2, browser: await launch() };
}

export async function stopTwoServers(servers: TwoServers | undefined): Promise<void> {
  await servers?.browser.close();
  await servers?.fed.close();
}

export async function launch(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: run scripts/ensure-chromium.sh`);
  mkdirSync(SHOTS, { recursive: true });
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-quic',
      '--no-first-run',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/**
 * "None yet" answers of the end-to-end encryption API, which every signed-in client meets:
 * 404 for a user's own device list and key backup before the first exist, and for the state
 * of a room on another server one is only invited to (the E2eSession reads it on the invite).
 * Chromium logs each 404 on the console; these are expected, any other is a bug.
 */
export const E2E_NONE_YET = /\/api\/v1\/(keys\/backup|keys\/device_list\/[^/?]+|rooms\/[^/?]+\/state)$/;

/** Whether a failed response (`404 GET /path`) is one of the expected E2E "none yet" answers. */
export function isNoneYet(failure: string): boolean {
  const m = /^404 GET (\S+)$/.exec(failure);
  return m !== null && E2E_NONE_YET.test(m[1] as string);
}

/** Collects the pages' requests answered with an error as `status METHOD /path`, E2E "none yet" answers left out. */
export function collectFailures(pages: Page[]): string[] {
  const failed: string[] = [];
  for (const page of pages) {
    page.on('response', (r) => {
      const line = `${r.status()} ${r.request().method()} ${new URL(r.url()).pathname}`;
      if (r.status() >= 400 && !isNoneYet(line)) failed.push(line);
    });
  }
  return failed;
}

/** A browser context with a page whose console errors and page errors are collected. */
export async function openPage(browser: Browser, opts: { width?: number; height?: number } = {}) {
  const context: BrowserContext = await browser.newContext({
    viewport: { width: opts.width ?? 1280, height: opts.height ?? 800 },
    locale: 'en-GB',
  });
  const page: Page = await context.newPage();
  const errors: string[] = [];
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    const at = msg.location().url;
    if (/status of 404/.test(msg.text()) && at && E2E_NONE_YET.test(new URL(at).pathname)) return;
    errors.push(msg.text());
  });
  page.on('pageerror', (err) => errors.push(`pageerror: ${err.message}`));
  return { context, page, errors };
}

export async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`) });
}

/** A small solid-colour PNG, made here so the test needs no fixture files. */
export function makePng(width: number, height: number, rgb: [number, number, number]): Buffer {
  const chunk = (type: string, data: Buffer) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(body));
    return Buffer.concat([len, body, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // truecolour
  const row = Buffer.concat([Buffer.from([0]), Buffer.concat(Array.from({ length: width }, () => Buffer.from(rgb)))]);
  const raw = Buffer.concat(Array.from({ length: height }, () => row));
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(raw)),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

export interface FlakyLink {
  url: string;
  /** Cuts every open connection and refuses new ones until `restore()`. */
  drop(): void;
  restore(): void;
  close(): Promise<void>;
}

/**
 * A TCP relay in front of a server, so a test can cut one browser's connection (HTTP and
 * WebSocket alike) the way a network drop does, without touching the server.
 */
export async function flakyLink(targetPort: number): Promise<FlakyLink> {
  const sockets = new Set<Socket>();
  let down = false;
  const server = createServer((client) => {
    if (down) {
      client.destroy();
      return;
    }
    const upstream = connect(targetPort, '127.0.0.1');
    sockets.add(client);
    sockets.add(upstream);
    client.pipe(upstream);
    upstream.pipe(client);
    const end = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    drop() {
      down = true;
      for (const s of sockets) s.destroy();
      sockets.clear();
    },
    restore() {
      down = false;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** The last message whose own text (not a quote of another) contains `text`. */
export function messageWith(page: Page, text: string): Locator {
  return page
    .getByTestId('message')
    .filter({ has: page.getByTestId('message-body').filter({ hasText: text }) })
    .last();
}

/** Types `text` into the composer and sends it with Enter. */
export async function sendMessage(page: Page, text: string): Promise<void> {
  const box = page.getByTestId('composer');
  await box.fill(text);
  await box.press('Enter');
}

/** Signs up through the UI and waits for the home screen. */
export async function signUpInBrowser(page: Page, username: string, base: string): Promise<void> {
  await page.goto(base);
  await page.waitForURL(/\/login/);
  await page.getByRole('link', { name: 'Create an account' }).click();
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill('correct horse battery');
  await page.getByRole('button', { name: 'Create account' }).click();
  await page.getByRole('heading', { name: `Welcome, ${username}` }).waitFor();
}

/** Offline moments log failed fetches; anything else on the console is a bug. */
export function unexpectedConsole(errors: string[]): string[] {
  return errors.filter(
    (e) => !/ERR_CONNECTION_(RESET|REFUSED|CLOSED)|ERR_EMPTY_RESPONSE|WebSocket connection to .* failed|Failed to fetch/.test(e),
  );
}

const axeSource = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

export interface AxeFinding {
  id: string;
  impact: string | null;
  help: string;
  detail: string;
  targets: string[];
}

/**
 * Runs axe-core in the page against WCAG 2.1 A and AA (plus the label-in-name check, which
 * axe counts as experimental), and answers every violation with up to three offending nodes.
 */
export async function axe(page: Page): Promise<AxeFinding[]> {
  await page.evaluate(axeSource);
  const violations = await page.evaluate(async () => {
    type V = { id: string; impact: string | null; help: string; nodes: Array<{ target: string[]; failureSummary?: string }> };
    const w = window as unknown as { axe: { run: (ctx: unknown, opts: unknown) => Promise<{ violations: V[] }> } };
    const result = await w.axe.run(document, {
      runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] },
      rules: { 'label-content-name-mismatch': { enabled: true } },
    });
    return result.violations.map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      // The first node's explanation names the colours and ratio for a contrast failure.
      detail: v.nodes[0]?.failureSummary?.split('\n').slice(1, 2).join(' ').trim() ?? '',
      targets: v.nodes.slice(0, 3).map((n) => n.target.join(' ')),
    }));
  });
  return violations;
}
