import { readdir } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { deflateSync } from 'node:zlib';
import { downloadMedia, getMediaInfo, type ParleyClient, uploadMedia } from '@parley/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostileAuthHeaders, hostilePathSegments } from './support/hostile.js';
import { startTestServer, type TestServer } from './support/server.js';

const MAX_UPLOAD = 256 * 1024;
const QUOTA = 3 * MAX_UPLOAD;

// --- tiny valid files ---

function crc32(bytes: Uint8Array): number {
  let crc = 0xffffffff;
  for (const byte of bytes) {
    crc ^= byte;
    for (let k = 0; k < 8; k++) crc = (crc >>> 1) ^ (0xedb88320 & -(crc & 1));
  }
  return (crc ^ 0xffffffff) >>> 0;
}

function pngChunk(type: string, data: Buffer): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const typed = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(typed));
  return Buffer.concat([length, typed, crc]);
}

/** A 1×1 opaque red PNG (RFC 2083: signature, IHDR, IDAT, IEND). */
function tinyPng(): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(1, 0);
  ihdr.writeUInt32BE(1, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // truecolour RGB
  const scanline = Buffer.from([0, 0xff, 0, 0]); // filter type 0, then R G B
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk('IHDR', ihdr),
    pngChunk('IDAT', deflateSync(scanline)),
    pngChunk('IEND', Buffer.alloc(0)),
  ]);
}

const JPEG = Buffer.from([
  0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 0x4a, 0x46, 0x49, 0x46, 0x00, 0x01, 0x01, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00,
]);
const GIF89 = Buffer.concat([Buffer.from('GIF89a', 'latin1'), Buffer.from([1, 0, 1, 0, 0x80, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0x3b])]);
const GIF87 = Buffer.concat([Buffer.from('GIF87a', 'latin1'), Buffer.from([1, 0, 1, 0, 0, 0, 0, 0x3b])]);
const PDF = Buffer.from('%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n', 'latin1');

// --- raw HTTP helpers ---

interface UploadOptions {
  contentType?: string;
  query?: string;
  headers?: Record<string, string>;
}

async function uploadRaw(
  server: TestServer,
  token: string | null,
  raw: NonNullable<RequestInit['body']> | Buffer,
  opts: UploadOptions = {},
): Promise<Response> {
  const body = Buffer.isBuffer(raw) ? new Uint8Array(raw) : raw;
  const headers: Record<string, string> = { 'content-type': opts.contentType ?? 'application/octet-stream', ...opts.headers };
  if (token) headers.authorization = `Bearer ${token}`;
  const init: RequestInit & { duplex?: 'half' } = { method: 'POST', headers, body };
  if (body instanceof ReadableStream) init.duplex = 'half';
  return fetch(`${server.url}/api/v1/media${opts.query ?? ''}`, init);
}

/** A body without Content-Length, so only the streaming limit can stop it. */
function chunkedBody(totalBytes: number, chunkBytes = 64 * 1024): ReadableStream<Uint8Array> {
  let sent = 0;
  return new ReadableStream({
    pull(controller) {
      if (sent >= totalBytes) return controller.close();
      const n = Math.min(chunkBytes, totalBytes - sent);
      sent += n;
      controller.enqueue(new Uint8Array(n).fill(0x61));
    },
  });
}

function get(server: TestServer, token: string | null, urlPath: string, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${server.url}${urlPath}`, { headers: token ? { ...headers, authorization: `Bearer ${token}` } : headers });
}

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries.filter((e) => e.isFile()).map((e) => path.join(e.parentPath, e.name));
}

describe('media', () => {
  let server: TestServer;
  let alice: ParleyClient;
  let token: string;
  const mediaDir = () => path.join(server.config.data_dir, 'media');

  beforeAll(async () => {
    server = await startTestServer({ media: { max_upload_bytes: MAX_UPLOAD, user_quota_bytes: QUOTA } });
    alice = server.client();
    await alice.register({ username: 'alice', password: 'alice password' });
    token = alice.session?.access_token as string;
  });
  afterAll(() => server?.close());

  async function newUser(name: string): Promise<string> {
    const client = server.client();
    await client.register({ username: name, password: `${name} password` });
    return client.session?.access_token as string;
  }

  it('round-trips a PNG through the sdk, served inline with its sniffed type', async () => {
    const png = tinyPng();
    const progress: Array<[number, number]> = [];
    const uploaded = await uploadMedia(alice, new Uint8Array(png), {
      filename: 'red dot.png',
      contentType: 'image/png',
      onProgress: (sent, total) => progress.push([sent, total]),
    });
    expect(uploaded).toMatchObject({ content_type: 'image/png', size: png.length });
    expect(uploaded.media_id).toMatch(/^[A-Za-z0-9_-]{32}$/);
    expect(uploaded.content_uri).toBe(`parley://hs1.test/${uploaded.media_id}`);
    expect(progress).toEqual([
      [0, png.length],
      [png.length, png.length],
    ]);

    const downloaded = await downloadMedia(alice, uploaded.content_uri);
    expect(Buffer.from(downloaded.data).equals(png)).toBe(true);
    expect(downloaded).toMatchObject({ contentType: 'image/png', filename: 'red dot.png' });

    const res = await get(server, token, `/api/v1/media/hs1.test/${uploaded.media_id}`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-disposition')).toBe(`inline; filename="red dot.png"; filename*=UTF-8''red%20dot.png`);
    expect(res.headers.get('content-security-policy')).toBe("sandbox; default-src 'none'");
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    expect(res.headers.get('content-length')).toBe(String(png.length));

    const info = await getMediaInfo(alice, uploaded.content_uri);
    expect(info).toMatchObject({ content_type: 'image/png', size: png.length, filename: 'red dot.png', inline: true });
    expect(info.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(res.headers.get('etag')).toBe(`"${info.sha256}"`);

    // Any signed-in user of this server may fetch it by ID.
    const bob = await newUser('bob');
    const asBob = await get(server, bob, `/api/v1/media/hs1.test/${uploaded.media_id}`);
    expect(Buffer.from(await asBob.arrayBuffer()).equals(png)).toBe(true);
  });

  it('answers conditional and range requests', async () => {
    const body = Buffer.from('0123456789abcdefghij');
    const { media_id } = (await (await uploadRaw(server, token, body, { contentType: 'text/plain' })).json()) as { media_id: string };
    const url = `/api/v1/media/hs1.test/${media_id}`;
    const etag = (await get(server, token, url)).headers.get('etag') as string;

    expect((await get(server, token, url, { 'if-none-match': etag })).status).toBe(304);

    const partial = await get(server, token, url, { range: 'bytes=5-9' });
    expect(partial.status).toBe(206);
    expect(partial.headers.get('content-range')).toBe('bytes 5-9/20');
    expect(await partial.text()).toBe('56789');

    const suffix = await get(server, token, url, { range: 'bytes=-3' });
    expect(await suffix.text()).toBe('hij');

    const stale = await get(server, token, url, { range: 'bytes=5-9', 'if-range': '"not-the-etag"' });
    expect(stale.status).toBe(200);
    expect(await stale.text()).toBe(body.toString());

    const outside = await get(server, token, url, { range: 'bytes=50-' });
    expect(outside.status).toBe(416);
    expect(outside.headers.get('content-range')).toBe('bytes */20');
    expect(outside.headers.get('content-type')).toMatch(/^application\/json/);

    const head = await fetch(`${server.url}${url}`, { method: 'HEAD', headers: { authorization: `Bearer ${token}` } });
    expect(head.status).toBe(200);
    expect(head.headers.get('content-length')).toBe('20');
  });

  describe('sniffs the type from the bytes, never from the client', () => {
    const cases: Array<{
      name: string;
      body: Buffer;
      claimed: string;
      type: string;
      served: string;
      disposition: 'inline' | 'attachment';
    }> = [
      { name: 'JPEG claimed as text', body: JPEG, claimed: 'text/plain', type: 'image/jpeg', served: 'image/jpeg', disposition: 'inline' },
      { name: 'GIF89a claimed as PNG', body: GIF89, claimed: 'image/png', type: 'image/gif', served: 'image/gif', disposition: 'inline' },
      { name: 'GIF87a without a type', body: GIF87, claimed: '', type: 'image/gif', served: 'image/gif', disposition: 'inline' },
      { name: 'PNG claimed as HTML', body: tinyPng(), claimed: 'text/html', type: 'image/png', served: 'image/png', disposition: 'inline' },
      {
        name: 'PDF claimed as image',
        body: PDF,
        claimed: 'image/jpeg',
        type: 'application/pdf',
        served: 'application/octet-stream',
        disposition: 'attachment',
      },
      {
        name: 'UTF-8 text claimed as GIF',
        body: Buffer.from('héllo wörld 🌍\n'),
        claimed: 'image/gif',
        type: 'text/plain; charset=utf-8',
        served: 'text/plain; charset=utf-8',
        disposition: 'inline',
      },
      {
        name: 'SVG claimed as PNG',
        body: Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>'),
        claimed: 'image/png',
        type: 'image/svg+xml',
        served: 'application/octet-stream',
        disposition: 'attachment',
      },
      {
        name: 'XML-wrapped SVG',
        body: Buffer.from('<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'),
        claimed: 'image/svg+xml',
        type: 'application/xml',
        served: 'application/octet-stream',
        disposition: 'attachment',
      },
      {
        name: 'invalid UTF-8',
        body: Buffer.from([0x68, 0x69, 0xff, 0xfe, 0x21]),
        claimed: 'text/plain',
        type: 'application/octet-stream',
        served: 'application/octet-stream',
        disposition: 'attachment',
      },
      {
        name: 'text with a NUL byte',
        body: Buffer.from('abc\u0000def'),
        claimed: 'text/plain',
        type: 'application/octet-stream',
        served: 'application/octet-stream',
        disposition: 'attachment',
      },
      {
        name: 'UTF-8 cut inside a character',
        body: Buffer.from('abc€').subarray(0, 5),
        claimed: 'text/plain',
        type: 'application/octet-stream',
        served: 'application/octet-stream',
        disposition: 'attachment',
      },
    ];

    it.each(cases)('$name', async ({ body, claimed, type, served, disposition }) => {
      const res = await uploadRaw(server, token, body, { contentType: claimed });
      expect(res.status).toBe(201);
      const uploaded = (await res.json()) as { media_id: string; content_type: string; size: number };
      expect(uploaded).toMatchObject({ content_type: type, size: body.length });
      const download = await get(server, token, `/api/v1/media/hs1.test/${uploaded.media_id}`);
      expect(download.headers.get('content-type')).toBe(served);
      expect(download.headers.get('content-disposition')).toBe(disposition);
      expect(Buffer.from(await download.arrayBuffer()).equals(body)).toBe(true);
    });
  });

  it('serves HTML uploaded as image/png as a sandboxed octet-stream attachment', async () => {
    const html = '<!DOCTYPE html><html><body><script>fetch("/steal?" + document.cookie)</script></body></html>';
    const res = await uploadRaw(server, token, html, { contentType: 'image/png', query: '?filename=cute-cat.png' });
    expect(res.status).toBe(201);
    const uploaded = (await res.json()) as { media_id: string; content_type: string };
    expect(uploaded.content_type).toBe('text/html');

    const download = await get(server, token, `/api/v1/media/hs1.test/${uploaded.media_id}`);
    expect(download.status).toBe(200);
    expect(download.headers.get('content-type')).toBe('application/octet-stream');
    expect(download.headers.get('content-disposition')).toBe(`attachment; filename="cute-cat.png"; filename*=UTF-8''cute-cat.png`);
    expect(download.headers.get('x-content-type-options')).toBe('nosniff');
    expect(download.headers.get('content-security-policy')).toBe("sandbox; default-src 'none'");
    expect(await download.text()).toBe(html);
  });

  it('encodes hostile filenames safely in Content-Disposition', async () => {
    const raw = `../"evil"\r\nSet-Cookie: a=b; Grüße 🎉 'x' (1)*.txt`;
    const res = await uploadRaw(server, token, 'hello', { contentType: 'text/plain', query: `?filename=${encodeURIComponent(raw)}` });
    expect(res.status).toBe(201);
    const { media_id, content_uri } = (await res.json()) as { media_id: string; content_uri: string };
    const stored = `"evil"Set-Cookie: a=b; Grüße 🎉 'x' (1)*.txt`;

    const download = await get(server, token, `/api/v1/media/hs1.test/${media_id}`);
    const header = download.headers.get('content-disposition') as string;
    expect(header).toMatch(/^[\x20-\x7e]+$/);
    expect(download.headers.get('set-cookie')).toBeNull();
    expect(header).toBe(
      `inline; filename="_evil_Set-Cookie: a=b; Gr__e _ 'x' (1)*.txt"; ` +
        `filename*=UTF-8''%22evil%22Set-Cookie%3A%20a%3Db%3B%20Gr%C3%BC%C3%9Fe%20%F0%9F%8E%89%20%27x%27%20%281%29%2A.txt`,
    );
    expect((await getMediaInfo(alice, content_uri)).filename).toBe(stored);
    expect((await downloadMedia(alice, content_uri)).filename).toBe(stored);
  });

  it('refuses an upload over the cap up front, and mid-stream without Content-Length, leaving no file', async () => {
    const frank = await newUser('frank');
    const before = await filesUnder(mediaDir());

    const declared = await uploadRaw(server, frank, new Uint8Array(MAX_UPLOAD + 1));
    expect(declared.status).toBe(413);
    expect(((await declared.json()) as { error: { code: string } }).error.code).toBe('PARLEY_TOO_LARGE');

    const streamed = await uploadRaw(server, frank, chunkedBody(4 * MAX_UPLOAD));
    expect(streamed.status).toBe(413);
    expect(((await streamed.json()) as { error: { code: string } }).error.code).toBe('PARLEY_TOO_LARGE');

    expect(await filesUnder(mediaDir())).toEqual(before);

    // Exactly at the cap is fine, streamed or not.
    expect((await uploadRaw(server, frank, new Uint8Array(MAX_UPLOAD))).status).toBe(201);
    expect((await uploadRaw(server, frank, chunkedBody(MAX_UPLOAD))).status).toBe(201);
  });

  it('removes the partial file when the client hangs up mid-upload', async () => {
    const erin = await newUser('erin');
    const before = await filesUnder(mediaDir());
    const { hostname, port } = new URL(server.url);
    const req = http.request({
      host: hostname,
      port,
      method: 'POST',
      path: '/api/v1/media',
      headers: { authorization: `Bearer ${erin}`, 'content-length': String(MAX_UPLOAD) },
    });
    req.on('error', () => {});
    req.write(Buffer.alloc(MAX_UPLOAD / 4));
    // Once bytes have reached the temp file, hang up.
    await expect.poll(async () => (await filesUnder(path.join(mediaDir(), 'tmp'))).length).toBe(1);
    req.destroy();
    await expect.poll(() => filesUnder(mediaDir())).toEqual(before);
    expect((await uploadRaw(server, erin, 'still works')).status).toBe(201);
  });

  it('enforces the per-user quota, also against parallel uploads', async () => {
    const carol = await newUser('carol');
    for (let i = 0; i < 2; i++) expect((await uploadRaw(server, carol, new Uint8Array(MAX_UPLOAD))).status).toBe(201);
    const before = await filesUnder(mediaDir());

    // MAX_UPLOAD bytes remain; two parallel uploads of 60% each both pass the early check,
    // and exactly one may land.
    const size = Math.floor(MAX_UPLOAD * 0.6);
    const results = await Promise.all([uploadRaw(server, carol, chunkedBody(size)), uploadRaw(server, carol, chunkedBody(size))]);
    expect(results.map((r) => r.status).sort()).toEqual([201, 403]);
    const refused = results.find((r) => r.status === 403) as Response;
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe('PARLEY_QUOTA_EXCEEDED');
    expect(await filesUnder(mediaDir())).toHaveLength(before.length + 1);

    // Declared and streamed bodies over the remaining space are refused too.
    const left = MAX_UPLOAD - size;
    const declared = await uploadRaw(server, carol, new Uint8Array(left + 1));
    expect(declared.status).toBe(403);
    expect(((await declared.json()) as { error: { code: string } }).error.code).toBe('PARLEY_QUOTA_EXCEEDED');
    const streamed = await uploadRaw(server, carol, chunkedBody(left + 1));
    expect(streamed.status).toBe(403);
    expect((await uploadRaw(server, carol, new Uint8Array(left))).status).toBe(201);
    expect(await filesUnder(mediaDir())).toHaveLength(before.length + 2);

    // Another account's quota is untouched.
    expect((await uploadRaw(server, await newUser('dave'), new Uint8Array(MAX_UPLOAD))).status).toBe(201);
  });

  it('requires authentication for upload and download', async () => {
    const res = await uploadRaw(server, null, tinyPng());
    expect(res.status).toBe(401);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('PARLEY_MISSING_TOKEN');
    for (const header of hostileAuthHeaders) {
      const hostile = await uploadRaw(server, null, 'x', { headers: { authorization: header } });
      expect(hostile.status, header.slice(0, 40)).toBe(401);
    }
    const { media_id } = await uploadMedia(alice, new Uint8Array(tinyPng()));
    expect((await get(server, null, `/api/v1/media/hs1.test/${media_id}`)).status).toBe(401);
    expect((await get(server, null, `/api/v1/media/hs1.test/${media_id}/info`)).status).toBe(401);
  });

  it('answers 404 for unknown media and for other servers’ media', async () => {
    const unknown = 'A'.repeat(32);
    for (const suffix of ['', '/info']) {
      const res = await get(server, token, `/api/v1/media/hs1.test/${unknown}${suffix}`);
      expect(res.status).toBe(404);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('PARLEY_NOT_FOUND');
    }
    const { media_id } = await uploadMedia(alice, new Uint8Array(tinyPng()));
    // The same ID under another server name is a different (remote) file, not ours: this
    // server asks hs2.test for it, which cannot be reached (.test never resolves).
    expect((await get(server, token, `/api/v1/media/hs2.test/${media_id}`)).status).toBe(502);
    expect((await get(server, token, `/api/v1/media/hs2.test:8448/${media_id}/info`)).status).toBe(502);
    await expect(downloadMedia(alice, `parley://hs1.test/${unknown}`)).rejects.toMatchObject({ status: 404, code: 'PARLEY_NOT_FOUND' });
    await expect(downloadMedia(alice, 'https://evil.example/x')).rejects.toThrow(TypeError);
  });

  it('refuses hostile server names and media IDs in the path with a 4xx', async () => {
    const { media_id } = await uploadMedia(alice, new Uint8Array(tinyPng()));
    for (const segment of hostilePathSegments) {
      for (const urlPath of [
        `/api/v1/media/${segment}/${media_id}`,
        `/api/v1/media/hs1.test/${segment}`,
        `/api/v1/media/${segment}/${segment}/info`,
        `/api/v1/media/hs1.test/${segment}/info`,
      ]) {
        const res = await get(server, token, urlPath);
        expect(res.status, urlPath).toBeGreaterThanOrEqual(400);
        expect(res.status, urlPath).toBeLessThan(500);
        expect(res.headers.get('content-type'), urlPath).toMatch(/^application\/json/);
      }
    }
  });

  it('treats the body as bytes whatever the headers and query say', async () => {
    const odd: Array<[string, UploadOptions, number]> = [
      ['very long Content-Type', { contentType: `image/${'x'.repeat(5000)}` }, 201],
      ['garbage Content-Type', { contentType: ';;;/==' }, 201],
      ['JSON Content-Type', { contentType: 'application/json' }, 201],
      ['path traversal filename', { query: `?filename=${encodeURIComponent('../../../etc/passwd')}` }, 201],
      ['filename of controls only', { query: `?filename=${encodeURIComponent('\u0000\r\n')}` }, 201],
      ['broken percent-encoding', { query: '?filename=%E0%A4%A' }, 201],
      ['filename of 255 characters', { query: `?filename=${encodeURIComponent('é'.repeat(255))}` }, 201],
      ['filename of 256 characters', { query: `?filename=${'a'.repeat(256)}` }, 400],
      ['filename given twice', { query: '?filename=a&filename=b' }, 400],
      ['gzip Content-Encoding', { headers: { 'content-encoding': 'gzip' } }, 415],
    ];
    for (const [name, opts, status] of odd) {
      const res = await uploadRaw(server, token, '{"not":"parsed"}', opts);
      expect(res.status, name).toBe(status);
      if (status === 201) expect(((await res.json()) as { content_type: string }).content_type, name).toBe('text/plain; charset=utf-8');
    }

    const traversal = await uploadRaw(server, token, 'x', { query: `?filename=${encodeURIComponent('../../../etc/passwd')}` });
    const { media_id } = (await traversal.json()) as { media_id: string };
    const info = (await (await get(server, token, `/api/v1/media/hs1.test/${media_id}/info`)).json()) as { filename: string };
    expect(info.filename).toBe('passwd');

    // An empty file is a valid (empty, text) file.
    const empty = await uploadRaw(server, token, new Uint8Array(0));
    expect(empty.status).toBe(201);
    expect(await empty.json()).toMatchObject({ size: 0, content_type: 'text/plain; charset=utf-8' });
  });

  it('stores files only under data_dir/media, with no temp files left behind', async () => {
    const files = await filesUnder(mediaDir());
    expect(files.length).toBeGreaterThan(0);
    for (const file of files) {
      expect(path.relative(mediaDir(), file)).toMatch(/^[A-Za-z0-9_-]{2}\/[A-Za-z0-9_-]{2}\/[A-Za-z0-9_-]{32}$/);
    }
  });
});
