import type { MediaUploadResponse } from '@parley/schemas';
import { errorFromResponse, ParleyApiError, type ParleyClient } from '@parley/sdk';

// The sdk uploads with fetch, which reports no progress while a body is sent; XHR does.
// Authentication mirrors the sdk: refresh a token about to expire, retry once after a 401.
const MARGIN_MS = 30_000;

async function freshToken(client: ParleyClient): Promise<string> {
  const s = client.session;
  if (!s) throw new ParleyApiError({ status: 401, code: 'PARLEY_MISSING_TOKEN', message: 'not logged in' });
  if (s.expires_at_ms - Date.now() < MARGIN_MS) return (await client.refresh()).access_token;
  return s.access_token;
}

interface XhrReply {
  status: number;
  text: string;
  headers: Headers;
}

function send(
  url: string,
  token: string,
  file: Blob,
  onProgress: (sent: number, total: number) => void,
  signal?: AbortSignal,
): Promise<XhrReply> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', url);
    xhr.setRequestHeader('Authorization', `Bearer ${token}`);
    xhr.setRequestHeader('Content-Type', file.type || 'application/octet-stream');
    xhr.setRequestHeader('Accept', 'application/json');
    xhr.upload.onprogress = (e) => onProgress(e.loaded, e.lengthComputable ? e.total : file.size);
    xhr.onload = () => {
      const headers = new Headers();
      const retry = xhr.getResponseHeader('Retry-After');
      if (retry) headers.set('retry-after', retry);
      resolve({ status: xhr.status, text: xhr.responseText, headers });
    };
    xhr.onerror = () => reject(new ParleyApiError({ status: 0, code: 'PARLEY_NETWORK', message: `upload to ${url} failed` }));
    xhr.onabort = () => reject(new ParleyApiError({ status: 0, code: 'PARLEY_NETWORK', message: 'upload cancelled' }));
    signal?.addEventListener('abort', () => xhr.abort(), { once: true });
    xhr.send(file);
  });
}

/** Uploads one file with real progress; resolves to the server's answer (its `content_uri`). */
export async function uploadWithProgress(
  client: ParleyClient,
  file: Blob,
  filename: string,
  onProgress: (sent: number, total: number) => void,
  signal?: AbortSignal,
): Promise<MediaUploadResponse> {
  const url = `${client.baseUrl}/api/v1/media?filename=${encodeURIComponent(filename)}`;
  const token = await freshToken(client);
  let reply = await send(url, token, file, onProgress, signal);
  if (reply.status === 401) {
    if (client.session?.access_token === token) await client.refresh();
    reply = await send(url, await freshToken(client), file, onProgress, signal);
  }
  if (reply.status < 200 || reply.status > 299) throw errorFromResponse(reply.status, reply.headers, reply.text);
  try {
    return JSON.parse(reply.text) as MediaUploadResponse;
  } catch {
    throw new ParleyApiError({ status: reply.status, code: 'PARLEY_INTERNAL', message: 'malformed upload answer' });
  }
}
