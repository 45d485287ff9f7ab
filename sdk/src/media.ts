import { type MediaInfo, type MediaUploadResponse, parseContentUri } from '@parley/schemas';
import type { ParleyClient } from './client.js';
import { malformedResponse } from './errors.js';

export interface UploadMediaOptions {
  /** Stored (cleaned) and offered back as the download's filename. */
  filename?: string;
  /** Sent as Content-Type and recorded, but the server decides the type from the bytes. */
  contentType?: string;
  /**
   * Coarse progress: `fetch` reports nothing while a body uploads, so this is called with
   * 0 before sending and with the total once the server has stored the file.
   */
  onProgress?: (sentBytes: number, totalBytes: number) => void;
}

export interface DownloadedMedia {
  /** As served: the sniffed type when safe to show inline, else application/octet-stream. */
  contentType: string;
  data: Uint8Array;
  filename?: string;
}

const enc = encodeURIComponent;

function assertClient(client: ParleyClient): void {
  if (typeof client !== 'object' || client === null || typeof client.requestRaw !== 'function') {
    throw new TypeError('client must be a ParleyClient');
  }
}

function splitUri(contentUri: string): { serverName: string; mediaId: string } {
  const parsed = parseContentUri(contentUri);
  if (!parsed) throw new TypeError('contentUri must be "parley://<server_name>/<media_id>"');
  return parsed;
}

/** Uploads one file; the answer's `content_uri` is what messages and profiles refer to. */
export async function uploadMedia(
  client: ParleyClient,
  data: Blob | Uint8Array,
  opts: UploadMediaOptions = {},
): Promise<MediaUploadResponse> {
  assertClient(client);
  let body: Blob | Uint8Array<ArrayBuffer>;
  if (typeof Blob !== 'undefined' && data instanceof Blob) body = data;
  else if (data instanceof Uint8Array) body = data.buffer instanceof ArrayBuffer ? (data as Uint8Array<ArrayBuffer>) : new Uint8Array(data);
  else throw new TypeError('data must be a Blob or a Uint8Array');
  if (opts.filename !== undefined && (typeof opts.filename !== 'string' || opts.filename === '')) {
    throw new TypeError('opts.filename must be a non-empty string');
  }
  if (opts.contentType !== undefined && typeof opts.contentType !== 'string') throw new TypeError('opts.contentType must be a string');

  const total = body instanceof Uint8Array ? body.byteLength : body.size;
  const blobType = body instanceof Uint8Array ? '' : body.type;
  const contentType = opts.contentType || blobType || 'application/octet-stream';
  const path = opts.filename === undefined ? '/api/v1/media' : `/api/v1/media?filename=${enc(opts.filename)}`;
  opts.onProgress?.(0, total);
  const res = await client.requestRaw('POST', path, body, { 'content-type': contentType, accept: 'application/json' });
  let result: MediaUploadResponse;
  try {
    result = (await res.json()) as MediaUploadResponse;
  } catch {
    throw malformedResponse(res.status, 'body is not JSON');
  }
  if (typeof result?.content_uri !== 'string') throw malformedResponse(res.status, 'no content_uri in the answer');
  opts.onProgress?.(total, total);
  return result;
}

/** Fetches a file's bytes (media downloads need the access token). */
export async function downloadMedia(client: ParleyClient, contentUri: string): Promise<DownloadedMedia> {
  assertClient(client);
  const { serverName, mediaId } = splitUri(contentUri);
  const res = await client.requestRaw('GET', `/api/v1/media/${enc(serverName)}/${enc(mediaId)}`, null, { accept: '*/*' });
  const data = new Uint8Array(await res.arrayBuffer());
  const filename = filenameFromDisposition(res.headers.get('content-disposition'));
  return {
    contentType: res.headers.get('content-type') ?? 'application/octet-stream',
    data,
    ...(filename === undefined ? {} : { filename }),
  };
}

/** Type, size, filename and hash as the server recorded them. */
export async function getMediaInfo(client: ParleyClient, contentUri: string): Promise<MediaInfo> {
  assertClient(client);
  const { serverName, mediaId } = splitUri(contentUri);
  return client.request('GET', `/api/v1/media/${enc(serverName)}/${enc(mediaId)}/info`);
}

/**
 * The filename from a Content-Disposition header: `filename*` (RFC 8187, UTF-8 only)
 * wins over the plain `filename` fallback, as RFC 6266 §4.3 asks.
 */
export function filenameFromDisposition(header: string | null): string | undefined {
  if (!header) return undefined;
  const extended = /(?:^|;)\s*filename\*\s*=\s*UTF-8'[^']*'([^;\s]+)/i.exec(header);
  if (extended) {
    try {
      return decodeURIComponent(extended[1] as string);
    } catch {
      // Malformed percent-encoding: fall back to the plain parameter.
    }
  }
  const quoted = /(?:^|;)\s*filename\s*=\s*"((?:[^"\\]|\\.)*)"/i.exec(header);
  if (quoted) return (quoted[1] as string).replace(/\\(.)/g, '$1');
  const token = /(?:^|;)\s*filename\s*=\s*([^;\s"]+)/i.exec(header);
  return token ? token[1] : undefined;
}
