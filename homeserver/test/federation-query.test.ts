import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { deflateSync } from 'node:zlib';
import { buildKeyDocument, generateSigningKey } from '@parley/federation/keys';
import { loadOrCreateTlsCertificate } from '@parley/federation/tls';
import { downloadMedia, getMediaInfo, isParleyApiError, type ParleyClient, RoomsApi, uploadMedia } from '@parley/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Federation, type FedServer, startFederation } from './support/federation.js';
import { freePort } from './support/net.js';

/** hs2's media cap: small, so hs1 can hold a file hs2 must refuse to fetch. */
const HS2_MAX_UPLOAD = 64 * 1024;
const HS2_QUERY_TIMEOUT_MS = 1500;

function pngChunk(type: string, data: Buffer): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const crcInput = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(crcInput));
  return Buffer.concat([length, crcInput, crc]);
}

function crc32(bytes: Buffer): number {
  let c = 0xffffffff;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}

/** A width×1 opaque PNG with random pixels (RFC 2083), so each call is a distinct file. */
function png(width = 16): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(1, 4);
  ihdr.set([8, 2, 0, 0, 0], 8); // 8-bit RGB
  const scanline = Buffer.concat([Buffer.from([0]), randomBytes(width * 3)]);
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk('IHDR', ihdr),
    pngChunk('IDAT', deflateSync(scanline)),
    pngChunk('IEND', Buffer.alloc(0)),
  ]);
}

async function failure(p: Promise<unknown>): Promise<{ status: number; code: string; message: string }> {
  try {
    await p;
  } catch (err) {
    if (isParleyApiError(err)) return { status: err.status, code: err.code, message: err.message };
    throw err;
  }
  throw new Error('expected the call to fail');
}

/** A request to a federation listener as an outsider: no pinning, no signature unless given. */
function federationGet(port: number, pathAndQuery: string, authorization?: string): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const req = https.get(
      `https://127.0.0.1:${port}${pathAndQuery}`,
      { rejectUnauthorized: false, headers: authorization ? { authorization } : {} },
      (res) => {
        let text = '';
        res.on('data', (d) => {
          text += d;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text ? JSON.parse(text) : null }));
      },
    );
    req.on('error', reject);
  });
}

/** How many times hs1 answered a media fetch with 200 (from its Prometheus counters). */
async function mediaServedBy(server: FedServer): Promise<number> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  let total = 0;
  for (const line of text.split('\n')) {
    if (
      line.startsWith('parley_http_requests_total{') &&
      line.includes('route="/federation/v1/media/:mediaId"') &&
      line.includes('status="200"')
    ) {
      total += Number(line.slice(line.lastIndexOf(' ') + 1));
    }
  }
  return total;
}

/**
 * A server that completes TLS and serves a valid key document (so it is a real peer),
 * then never answers anything else: the directory of a server that times out.
 */
async function startSilentServer(): Promise<{ name: string; close(): Promise<void> }> {
  const port = await freePort();
  const name = `127.0.0.1:${port}`;
  const dir = await mkdtemp(path.join(tmpdir(), 'parley-silent-'));
  const tls = await loadOrCreateTlsCertificate(dir, '127.0.0.1');
  const key = generateSigningKey();
  const server = https.createServer({ cert: tls.certPem, key: tls.keyPem }, (req, res) => {
    if (req.url === '/federation/v1/keys') {
      const doc = buildKeyDocument({
        serverName: name,
        current: key,
        tlsFingerprints: [tls.fingerprint],
        validForMs: 3_600_000,
        now: Date.now(),
      });
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(doc));
    }
    // Anything else: hold the request open and say nothing.
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', () => resolve()));
  return {
    name: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await rm(dir, { recursive: true, force: true });
    },
  };
}

describe('federation: remote aliases, directories and media', () => {
  let fed: Federation;
  let hs1: FedServer;
  let hs2: FedServer;
  let alice: { client: ParleyClient; rooms: RoomsApi; userId: string };
  let bob: { client: ParleyClient; rooms: RoomsApi; userId: string };
  let lobbyId: string;

  beforeAll(async () => {
    fed = await startFederation(['hs1.test', 'hs2.test'], {
      overrides: (name) =>
        name === 'hs2.test' ? { media: { max_upload_bytes: HS2_MAX_UPLOAD }, federation: { query_timeout_ms: HS2_QUERY_TIMEOUT_MS } } : {},
    });
    hs1 = fed.byName('hs1.test');
    hs2 = fed.byName('hs2.test');
    alice = await hs1.user('alice');
    bob = await hs2.user('bob');
    ({ room_id: lobbyId } = await alice.rooms.create({ visibility: 'public', name: 'Lobby', topic: 'all welcome', alias: 'lobby' }));
    await alice.rooms.sendText(lobbyId, 'welcome to the lobby');
  }, 60_000);
  afterAll(async () => {
    await fed?.close();
  });

  describe('aliases of other servers', () => {
    it('resolves an alias by asking the server it names', async () => {
      expect(await bob.rooms.resolveAlias('#lobby:hs1.test')).toEqual({ room_id: lobbyId, servers: ['hs1.test'] });
    });

    it('joins by remote alias, then reads the room', async () => {
      expect(await bob.rooms.join('#lobby:hs1.test')).toEqual({ room_id: lobbyId });
      const page = await bob.rooms.messages(lobbyId, { limit: 20 });
      expect(page.chunk.map((e) => e.content.body)).toContain('welcome to the lobby');
      expect((await alice.rooms.members(lobbyId)).map((m) => m.user_id)).toContain(bob.userId);
    });

    it('answers a clear 404 when the other server has no such alias', async () => {
      const err = await failure(bob.rooms.resolveAlias('#nothing:hs1.test'));
      expect(err).toMatchObject({ status: 404, code: 'PARLEY_NOT_FOUND' });
      expect(err.message).toContain('hs1.test');
      expect(await failure(bob.rooms.join('#nothing:hs1.test'))).toMatchObject({ status: 404, code: 'PARLEY_NOT_FOUND' });
    });

    it('caches an answer briefly: a deleted alias still resolves on hs2 for a while', async () => {
      const { room_id } = await alice.rooms.create({ visibility: 'public', name: 'Brief', alias: 'brief' });
      expect((await bob.rooms.resolveAlias('#brief:hs1.test')).room_id).toBe(room_id);
      await alice.rooms.deleteAlias('#brief:hs1.test');
      expect((await failure(alice.rooms.resolveAlias('#brief:hs1.test'))).status).toBe(404);
      expect((await bob.rooms.resolveAlias('#brief:hs1.test')).room_id).toBe(room_id);
    });

    it('answers 502 PARLEY_UNAVAILABLE for an alias of a server that cannot be reached', async () => {
      const nobody = `127.0.0.1:${await freePort()}`;
      const err = await failure(bob.rooms.resolveAlias(`#room:${nobody}`));
      expect(err).toMatchObject({ status: 502, code: 'PARLEY_UNAVAILABLE' });
      expect(err.message).toContain(nobody);
      expect(await failure(bob.rooms.join(`#room:${nobody}`))).toMatchObject({ status: 502, code: 'PARLEY_UNAVAILABLE' });
    });

    it('answers 404 when a peer is asked about an alias that is not its own', async () => {
      // hs2 asks hs1 about hs1's alias only; hs1 itself refuses to vouch for hs2's names.
      const res = await hs1.running.federation?.context.client
        .request({
          destination: 'hs2.test',
          method: 'GET',
          path: `/federation/v1/query/alias?alias=${encodeURIComponent('#lobby:hs1.test')}`,
        })
        .catch((err: { status?: number }) => err);
      expect((res as { status?: number }).status).toBe(404);
    });
  });

  describe('public room directories of other servers', () => {
    let hallId: string;
    beforeAll(async () => {
      ({ room_id: hallId } = await alice.rooms.create({ visibility: 'public', name: 'Great Hall', topic: 'talks' }));
      await alice.rooms.create({ visibility: 'private', name: 'Back Office' });
    });

    it('lists the published rooms of another server, not its private ones', async () => {
      const page = await bob.rooms.directory({ server: 'hs1.test' });
      const names = page.chunk.map((r) => r.name);
      expect(names).toEqual(expect.arrayContaining(['Lobby', 'Great Hall']));
      expect(names).not.toContain('Back Office');
      expect(page.chunk.find((r) => r.room_id === hallId)).toMatchObject({ topic: 'talks', kind: 'room', joined_members: 1 });
      // Without `server`, hs2's own directory, which has none of hs1's rooms.
      expect((await bob.rooms.directory()).chunk.map((r) => r.room_id)).not.toContain(hallId);
    });

    it('passes search and paging through', async () => {
      expect((await bob.rooms.directory({ server: 'hs1.test', q: 'hall' })).chunk.map((r) => r.room_id)).toEqual([hallId]);
      const first = await bob.rooms.directory({ server: 'hs1.test', limit: 1 });
      expect(first.chunk).toHaveLength(1);
      expect(first.next).toBeDefined();
      const second = await bob.rooms.directory({ server: 'hs1.test', limit: 1, since: first.next as string });
      expect(second.chunk).toHaveLength(1);
      expect(second.chunk[0]?.room_id).not.toBe(first.chunk[0]?.room_id);
    });

    it('refuses a server parameter that is not a server name', async () => {
      expect(await failure(bob.rooms.directory({ server: 'not a server/..' }))).toMatchObject({
        status: 400,
        code: 'PARLEY_INVALID_PARAM',
      });
    });

    it('answers 502 within the query deadline when the other server never answers', async () => {
      const silent = await startSilentServer();
      try {
        const started = Date.now();
        const err = await failure(bob.rooms.directory({ server: silent.name }));
        const elapsed = Date.now() - started;
        expect(err).toMatchObject({ status: 502, code: 'PARLEY_UNAVAILABLE' });
        expect(err.message).toContain('did not answer in time');
        // It waited for the deadline (never earlier); how much longer a busy machine takes to
        // answer is not this test's business (the test's own timeout bounds it).
        expect(elapsed).toBeGreaterThanOrEqual(HS2_QUERY_TIMEOUT_MS - 100);
      } finally {
        await silent.close();
      }
    });

    it('answers 502 for the directory of a server that cannot be reached', async () => {
      const nobody = `127.0.0.1:${await freePort()}`;
      expect(await failure(bob.rooms.directory({ server: nobody }))).toMatchObject({ status: 502, code: 'PARLEY_UNAVAILABLE' });
    });
  });

  describe('unsigned or badly signed requests to these endpoints', () => {
    const paths = [
      `/federation/v1/query/alias?alias=${encodeURIComponent('#lobby:hs1.test')}`,
      '/federation/v1/directory/rooms?limit=5',
      '/federation/v1/media/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',
    ];
    it.each(paths)('%s → 401', async (p) => {
      const port = hs1.running.federation?.port as number;
      const none = await federationGet(port, p);
      expect(none.status).toBe(401);
      expect((none.body as { error: { code: string } }).error.code).toBe('PARLEY_FED_BAD_AUTH');
      const forged = await federationGet(
        port,
        p,
        `Parley origin="hs2.test",destination="hs1.test",key="ed25519:${'a'.repeat(8)}",ts="${Date.now()}",sig="${'A'.repeat(86)}"`,
      );
      expect(forged.status).toBe(401);
      expect((forged.body as { error: { code: string } }).error.code).toBe('PARLEY_FED_UNKNOWN_KEY');
    });
  });

  describe('media of other servers', () => {
    it('fetches remote media once over federation and serves it locally, also while its origin is down', async () => {
      const image = png();
      const uploaded = await uploadMedia(alice.client, new Uint8Array(image), { filename: 'red.png', contentType: 'image/png' });
      expect(uploaded.content_uri).toMatch(/^parley:\/\/hs1\.test\//);
      const servedBefore = await mediaServedBy(hs1);

      const first = await downloadMedia(bob.client, uploaded.content_uri);
      expect(Buffer.from(first.data).equals(image)).toBe(true);
      expect(first.contentType).toBe('image/png');
      expect(first.filename).toBe('red.png');
      const info = await getMediaInfo(bob.client, uploaded.content_uri);
      expect(info).toMatchObject({
        content_uri: uploaded.content_uri,
        media_id: uploaded.media_id,
        size: image.length,
        content_type: 'image/png',
      });

      const again = await downloadMedia(bob.client, uploaded.content_uri);
      expect(Buffer.from(again.data).equals(image)).toBe(true);
      expect(await mediaServedBy(hs1)).toBe(servedBefore + 1);

      await hs1.stop();
      try {
        const whileDown = await downloadMedia(bob.client, uploaded.content_uri);
        expect(Buffer.from(whileDown.data).equals(image)).toBe(true);
        // Media hs2 has not cached yet cannot come from a server that is down.
        const err = await failure(downloadMedia(bob.client, 'parley://hs1.test/BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB'));
        expect(err).toMatchObject({ status: 502, code: 'PARLEY_UNAVAILABLE' });
      } finally {
        await hs1.start();
      }
      // hs1 came back on a new client port: sign in again there.
      const client = hs1.client();
      await client.login({ username: 'alice', password: 'alice password' });
      alice = { ...alice, client, rooms: new RoomsApi(client) };
    });

    it('single-flights concurrent first downloads of the same remote file', async () => {
      const image = png(64);
      const uploaded = await uploadMedia(alice.client, new Uint8Array(image));
      const servedBefore = await mediaServedBy(hs1);
      const results = await Promise.all(Array.from({ length: 6 }, () => downloadMedia(bob.client, uploaded.content_uri)));
      for (const r of results) expect(Buffer.from(r.data).equals(image)).toBe(true);
      expect(await mediaServedBy(hs1)).toBe(servedBefore + 1);
      const rows = await hs2.running.services.db('media').where({ origin: 'hs1.test', remote_media_id: uploaded.media_id });
      expect(rows).toHaveLength(1);
    });

    it('fetches many distinct remote files at once (a few at a time) without losing any', async () => {
      const images = Array.from({ length: 9 }, (_, i) => png(8 + i));
      const uris = await Promise.all(images.map(async (img) => (await uploadMedia(alice.client, new Uint8Array(img))).content_uri));
      const got = await Promise.all(uris.map((uri) => downloadMedia(bob.client, uri)));
      for (const [i, g] of got.entries()) expect(Buffer.from(g.data).equals(images[i] as Buffer)).toBe(true);
    });

    it('re-sniffs remote bytes: markup from another server is never served inline', async () => {
      const html = Buffer.from('<html><body><script>alert(1)</script></body></html>');
      const uploaded = await uploadMedia(alice.client, new Uint8Array(html), { contentType: 'image/png' });
      const got = await downloadMedia(bob.client, uploaded.content_uri);
      expect(got.contentType).toBe('application/octet-stream');
      expect((await getMediaInfo(bob.client, uploaded.content_uri)).content_type).toBe('text/html');
    });

    it('refuses remote media larger than its own upload cap, and caches nothing', async () => {
      const big = randomBytes(HS2_MAX_UPLOAD + 1024);
      const uploaded = await uploadMedia(alice.client, new Uint8Array(big));
      const err = await failure(downloadMedia(bob.client, uploaded.content_uri));
      expect(err).toMatchObject({ status: 502, code: 'PARLEY_TOO_LARGE' });
      expect(err.message).toContain(String(HS2_MAX_UPLOAD));
      expect(await hs2.running.services.db('media').where({ remote_media_id: uploaded.media_id })).toHaveLength(0);
    });

    it('answers 404 for an unknown remote media ID', async () => {
      const err = await failure(downloadMedia(bob.client, 'parley://hs1.test/CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC'));
      expect(err).toMatchObject({ status: 404, code: 'PARLEY_NOT_FOUND' });
      expect(err.message).toContain('hs1.test');
    });

    it('never serves a cached copy under its own name, nor relays it to a third server', async () => {
      const image = png();
      const uploaded = await uploadMedia(alice.client, new Uint8Array(image));
      await downloadMedia(bob.client, uploaded.content_uri);
      const [row] = await hs2.running.services.db('media').where({ origin: 'hs1.test', remote_media_id: uploaded.media_id });
      const localId = (row as { media_id: string }).media_id;
      expect(await failure(downloadMedia(bob.client, `parley://hs2.test/${localId}`))).toMatchObject({ status: 404 });
      expect(await failure(downloadMedia(alice.client, `parley://hs2.test/${localId}`))).toMatchObject({ status: 404 });
    });
  });
});
