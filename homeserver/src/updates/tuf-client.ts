import { Readable } from 'node:stream';
import type { FederationClient } from '@parley/federation/transport';
import { BaseFetcher } from 'tuf-js';
import { DownloadHTTPError } from 'tuf-js/dist/error.js';
import { FEDERATION_SCHEME } from './mirror.js';

// tuf-js and what it pulls in (make-fetch-happen, cacache, …) load only when a mirror syncs or
// an update is applied: mirror.ts imports this module on first use.
export { Updater } from 'tuf-js';

/**
 * Plain HTTP(S) GETs with a deadline and no redirects (tuf-js caps every length itself); keeps
 * the bytes of every `N.root.json` it downloads, so a mirror can serve the chain on.
 */
export class RecordingFetcher extends BaseFetcher {
  readonly roots = new Map<number, Buffer>();
  constructor(
    private readonly timeoutMs: number,
    private readonly federation: FederationClient | undefined,
    private readonly maxBytes: number,
  ) {
    super();
  }
  async fetch(url: string): Promise<NodeJS.ReadableStream> {
    // A mirror found in the bootstrap list: its federation listener, reached through the
    // federation client (discovery, SSRF guard, the TLS pin from its key document).
    if (url.startsWith(`${FEDERATION_SCHEME}//`)) {
      if (!this.federation) throw new DownloadHTTPError('no federation client for a federation mirror', 400);
      const u = new URL(url);
      try {
        const res = await this.federation.request({
          destination: u.host,
          method: 'GET',
          path: u.pathname,
          raw: true,
          timeoutMs: this.timeoutMs,
          maxBytes: this.maxBytes,
        });
        return Readable.from([res.body as Buffer]);
      } catch (err) {
        const status = (err as { status?: number }).status;
        throw new DownloadHTTPError(`Failed to download: ${(err as Error).message}`, typeof status === 'number' ? status : 502);
      }
    }
    const res = await globalThis.fetch(url, { signal: AbortSignal.timeout(this.timeoutMs), redirect: 'error' });
    if (!res.ok || !res.body) {
      await res.body?.cancel().catch(() => {});
      throw new DownloadHTTPError('Failed to download', res.status);
    }
    return Readable.fromWeb(res.body as never);
  }
  override async downloadBytes(url: string, maxLength: number): Promise<Buffer> {
    const bytes = await super.downloadBytes(url, maxLength);
    const m = /\/(\d+)\.root\.json$/.exec(url);
    if (m) this.roots.set(Number(m[1]), bytes);
    return bytes;
  }
}
