import { describe, expect, it } from 'vitest';
import { downloadMedia, type FetchLike, ParleyClient, uploadMedia } from '../src/index.js';

interface Sent {
  url: string;
  method: string;
  headers: Record<string, string>;
  body: unknown;
}

const MEDIA_ID = 'A'.repeat(32);

/** A client whose fetch answers from `reply` and records what was sent. */
function fakeClient(reply: (sent: Sent, n: number) => Response): { client: ParleyClient; sent: Sent[] } {
  const sent: Sent[] = [];
  const fetch: FetchLike = async (url, init) => {
    const record = { url, method: init.method ?? 'GET', headers: { ...(init.headers as Record<string, string>) }, body: init.body };
    sent.push(record);
    return reply(record, sent.length);
  };
  const session = {
    user_id: '@a:hs.test',
    device_id: 'DEV',
    access_token: 'pat_old',
    refresh_token: 'prt_old',
    expires_at_ms: Date.now() + 3600_000,
  };
  return { client: new ParleyClient({ baseUrl: 'http://hs.test', fetch, session }), sent };
}

const json = (status: number, body: unknown) =>
  new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });
const uploaded = { content_uri: `parley://hs.test/${MEDIA_ID}`, media_id: MEDIA_ID, content_type: 'image/png', size: 3 };

describe('uploadMedia', () => {
  it('posts the raw bytes with the type and an encoded filename', async () => {
    const { client, sent } = fakeClient(() => json(201, uploaded));
    const progress: number[][] = [];
    const result = await uploadMedia(client, new Uint8Array([1, 2, 3]), {
      filename: 'a b&c.png',
      contentType: 'image/png',
      onProgress: (s, t) => progress.push([s, t]),
    });
    expect(result).toEqual(uploaded);
    expect(sent).toHaveLength(1);
    expect(sent[0]).toMatchObject({
      url: 'http://hs.test/api/v1/media?filename=a%20b%26c.png',
      method: 'POST',
      headers: { 'content-type': 'image/png', authorization: 'Bearer pat_old' },
    });
    expect(sent[0]?.body).toEqual(new Uint8Array([1, 2, 3]));
    expect(progress).toEqual([
      [0, 3],
      [3, 3],
    ]);
  });

  it('takes the Blob type, and sends the same body again after a refresh', async () => {
    const { client, sent } = fakeClient((s, n) => {
      if (s.url.endsWith('/auth/refresh')) return json(200, { access_token: 'pat_new', refresh_token: 'prt_new', expires_in_ms: 900_000 });
      if (n === 1) return json(401, { error: { code: 'PARLEY_TOKEN_EXPIRED', message: 'expired' } });
      return json(201, uploaded);
    });
    const blob = new Blob(['abc'], { type: 'text/plain' });
    await uploadMedia(client, blob);
    expect(sent.map((s) => s.url)).toEqual([
      'http://hs.test/api/v1/media',
      'http://hs.test/api/v1/auth/refresh',
      'http://hs.test/api/v1/media',
    ]);
    expect(sent[2]).toMatchObject({ headers: { 'content-type': 'text/plain', authorization: 'Bearer pat_new' } });
    expect(sent[2]?.body).toBe(blob);
  });

  it('rejects with the server error, and refuses bad arguments with TypeError', async () => {
    const { client } = fakeClient(() => json(413, { error: { code: 'PARLEY_TOO_LARGE', message: 'too big' } }));
    await expect(uploadMedia(client, new Uint8Array(1))).rejects.toMatchObject({ status: 413, code: 'PARLEY_TOO_LARGE' });
    await expect(uploadMedia(client, 'text' as never)).rejects.toThrow(TypeError);
    await expect(uploadMedia(client, new Uint8Array(1), { filename: '' })).rejects.toThrow(TypeError);
    await expect(uploadMedia({} as never, new Uint8Array(1))).rejects.toThrow(TypeError);
  });
});

describe('downloadMedia', () => {
  it('returns the bytes, type and decoded filename', async () => {
    const { client, sent } = fakeClient(
      () =>
        new Response(new Uint8Array([9, 8, 7]), {
          status: 200,
          headers: {
            'content-type': 'application/octet-stream',
            'content-disposition': `attachment; filename="Gr__e.txt"; filename*=UTF-8''Gr%C3%BC%C3%9Fe.txt`,
          },
        }),
    );
    const media = await downloadMedia(client, `parley://hs.test:8448/${MEDIA_ID}`);
    expect(sent[0]?.url).toBe(`http://hs.test/api/v1/media/hs.test%3A8448/${MEDIA_ID}`);
    expect(media).toEqual({ contentType: 'application/octet-stream', data: new Uint8Array([9, 8, 7]), filename: 'Grüße.txt' });
  });

  it('refuses anything that is not a parley:// content URI', async () => {
    const { client, sent } = fakeClient(() => json(200, {}));
    for (const uri of ['https://hs.test/x', 'parley://hs.test/', 'parley://hs.test/a/b', `parley://bad host/${MEDIA_ID}`, 42]) {
      await expect(downloadMedia(client, uri as string)).rejects.toThrow(TypeError);
    }
    expect(sent).toHaveLength(0);
  });
});
