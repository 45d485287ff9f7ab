import { randomBytes } from 'node:crypto';
import type { ReadStream } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import type { FederationRequest, FederationResponse } from '@parley/federation/transport';
import type { MediaInfo, MediaUploadResponse } from '@parley/schemas';
import type { Config } from '../config.js';
import type { Db } from '../db/database.js';
import { notFound, ParleyError } from '../errors.js';
import { remoteFailure } from '../federation/remote-errors.js';
import type { Logger } from '../logger.js';
import { MediaRepository, type MediaRow } from '../repositories/media.js';
import type { Clock } from './clock.js';
import { FILENAME_MAX_CHARS, isInlineSafe, sanitizeFilename, sniffText } from './media-policy.js';
import { MediaStore, type ReceivedFile, UploadLimitError } from './media-store.js';
import type { AuthContext } from './sessions.js';

export interface MediaLimits {
  maxUploadBytes: number;
  userQuotaBytes: number;
  /** Other servers' media cached here, all together; least recently used is evicted. */
  remoteCacheMaxBytes: number;
}

export interface MediaDeps {
  db: Db;
  media: MediaRepository;
  store: MediaStore;
  clock: Clock;
  serverName: string;
  limits: MediaLimits;
  log: Logger;
  /** Throws (429) when this user may not start another remote fetch now. */
  remoteFetchGate?: (userId: string) => Promise<void>;
}

/** Counts of the remote media cache since start (exported as metrics). */
export interface RemoteCacheStats {
  fetched: number;
  failed: number;
  evicted: number;
  evictedBytes: number;
}

export interface UploadRequest {
  /** Content-Length when the client sent one; checked before reading a byte. */
  declaredBytes: number | null;
  clientContentType: string | null;
  filename: string | null;
}

/** The part of the federation client remote media needs. */
export interface MediaFederation {
  request(request: FederationRequest): Promise<FederationResponse>;
}

// A remote file may take this long to arrive in full (the body cap is the upload cap).
const REMOTE_FETCH_TIMEOUT_MS = 120_000;
// A remote body is held in memory (up to the upload cap) until stored: bound how many at once.
const REMOTE_FETCH_CONCURRENCY = 4;

const tooLarge = (max: number) =>
  new ParleyError(413, 'PARLEY_TOO_LARGE', `the file is larger than this server's upload cap of ${max} bytes`);
const overQuota = (quota: number) =>
  new ParleyError(403, 'PARLEY_QUOTA_EXCEEDED', `this upload would exceed your media quota of ${quota} bytes`);

/** 24 random bytes: unguessable, so a media ID is also the capability to fetch it. */
function newMediaId(): string {
  return randomBytes(24).toString('base64url');
}

/** The name in our own `filename*=UTF-8''…` (RFC 8187), cleaned as an uploaded name is; null otherwise. */
function filenameFromDisposition(header: unknown): string | null {
  const match = typeof header === 'string' ? /filename\*=UTF-8''([A-Za-z0-9!#$&+.^_`|~%-]{1,2048})/i.exec(header) : null;
  if (!match) return null;
  let name: string | null;
  try {
    name = sanitizeFilename(decodeURIComponent(match[1] as string));
  } catch {
    return null;
  }
  return name !== null && [...name].length <= FILENAME_MAX_CHARS ? name : null;
}

export class MediaService {
  /** Set when federation runs: media of other servers is fetched through it and cached. */
  federation: MediaFederation | null = null;
  // One fetch per remote file at a time in this process; other processes meet at the unique index.
  readonly #fetching = new Map<string, Promise<MediaRow>>();
  #fetchesRunning = 0;
  readonly #fetchQueue: Array<() => void> = [];
  readonly remoteStats: RemoteCacheStats = { fetched: 0, failed: 0, evicted: 0, evictedBytes: 0 };

  constructor(private readonly deps: MediaDeps) {}

  contentUri(mediaId: string): string {
    return `parley://${this.deps.serverName}/${mediaId}`;
  }

  /** The URI that names a row: ours, or the origin's for a cached remote copy. */
  uriOf(row: MediaRow): { serverName: string; mediaId: string } {
    return row.origin && row.remote_media_id
      ? { serverName: row.origin, mediaId: row.remote_media_id }
      : { serverName: this.deps.serverName, mediaId: row.media_id };
  }

  async upload(auth: AuthContext, body: Readable, req: UploadRequest): Promise<MediaUploadResponse> {
    const { media, store, limits } = this.deps;
    const used = await media.bytesUsedBy(auth.userId);
    const remaining = Math.max(0, limits.userQuotaBytes - used);
    if (req.declaredBytes !== null && req.declaredBytes > limits.maxUploadBytes) throw tooLarge(limits.maxUploadBytes);
    if (req.declaredBytes !== null && req.declaredBytes > remaining) throw overQuota(limits.userQuotaBytes);

    const limit = Math.min(limits.maxUploadBytes, remaining);
    let file: ReceivedFile;
    try {
      file = await store.receive(body, limit);
    } catch (err) {
      if (err instanceof UploadLimitError) throw limit === limits.maxUploadBytes ? tooLarge(limit) : overQuota(limits.userQuotaBytes);
      // A client that hung up will not read the answer; disk failures stay 500s.
      if (body.destroyed || body.readableAborted) {
        throw new ParleyError(400, 'PARLEY_INVALID_PARAM', 'the upload was interrupted before the body was complete');
      }
      throw err;
    }

    try {
      const row: MediaRow = {
        media_id: newMediaId(),
        uploader: auth.userId,
        content_type: await this.#sniff(file),
        client_content_type: req.clientContentType,
        filename: req.filename,
        size: file.size,
        sha256: file.sha256,
        created_ts: this.deps.clock.now(),
      };
      await this.#commit(row, file.tempPath);
      this.deps.log.info({ media_id: row.media_id, size: row.size, content_type: row.content_type }, 'media uploaded');
      return { content_uri: this.contentUri(row.media_id), media_id: row.media_id, content_type: row.content_type, size: row.size };
    } finally {
      await store.discard(file.tempPath);
    }
  }

  /**
   * The row for `parley://serverName/mediaId`: our own upload, or a cached copy of another
   * server's media, fetched over federation on first use.
   */
  async get(serverName: string, mediaId: string, requester?: string): Promise<MediaRow> {
    if (serverName === this.deps.serverName) return this.getLocal(mediaId);
    const cached = await this.deps.media.findRemote(serverName, mediaId);
    if (cached) {
      // A copy an admin quarantined is served to nobody (and not fetched again).
      if (cached.quarantined_ts) throw notFound(`no media ${mediaId} on ${serverName}`);
      await this.deps.media.touchRemote(cached.media_id, this.deps.clock.now());
      return cached;
    }
    const key = `${serverName}/${mediaId}`;
    let pending = this.#fetching.get(key);
    // Every fetch not already under way costs the requester, found or not: random IDs were a
    // way to make this server download and keep the upload cap each (issue 10, M5).
    if (!pending && requester !== undefined && this.deps.remoteFetchGate) {
      await this.deps.remoteFetchGate(requester);
      pending = this.#fetching.get(key);
    }
    if (!pending) {
      pending = this.#withFetchSlot(() => this.#fetchRemote(serverName, mediaId)).finally(() => this.#fetching.delete(key));
      this.#fetching.set(key, pending);
    }
    return pending;
  }

  /** Media uploaded to this server (what `GET /federation/v1/media/:id` serves; never a cached copy). */
  async getLocal(mediaId: string): Promise<MediaRow> {
    const row = await this.deps.media.findLocal(mediaId);
    if (!row) throw notFound(`no media ${mediaId}`);
    return row;
  }

  info(row: MediaRow): MediaInfo {
    const uri = this.uriOf(row);
    return {
      content_uri: `parley://${uri.serverName}/${uri.mediaId}`,
      media_id: uri.mediaId,
      content_type: row.content_type,
      size: row.size,
      filename: row.filename,
      sha256: row.sha256,
      created_ts: row.created_ts,
      inline: isInlineSafe(row.content_type),
    };
  }

  /** The stored bytes (inclusive range), or 404 when the row outlived its file. */
  async open(row: MediaRow, range?: { start: number; end: number }): Promise<ReadStream> {
    const stream = await this.deps.store.open(row.media_id, range?.start, range?.end);
    if (!stream) throw this.#missing(row);
    return stream;
  }

  async ensureStored(row: MediaRow): Promise<void> {
    if (!(await this.deps.store.exists(row.media_id))) throw this.#missing(row);
  }

  async #withFetchSlot<T>(work: () => Promise<T>): Promise<T> {
    while (this.#fetchesRunning >= REMOTE_FETCH_CONCURRENCY) await new Promise<void>((resolve) => this.#fetchQueue.push(resolve));
    this.#fetchesRunning++;
    try {
      return await work();
    } finally {
      this.#fetchesRunning--;
      this.#fetchQueue.shift()?.();
    }
  }

  // Fetched once within the upload cap, then stored exactly like an upload: the bytes are
  // re-sniffed here and the origin's Content-Type is kept for diagnostics only.
  async #fetchRemote(origin: string, remoteId: string): Promise<MediaRow> {
    try {
      const row = await this.#download(origin, remoteId);
      this.remoteStats.fetched++;
      return row;
    } catch (err) {
      this.remoteStats.failed++;
      throw err;
    }
  }

  async #download(origin: string, remoteId: string): Promise<MediaRow> {
    const { media, store, limits, log } = this.deps;
    const federation = this.federation;
    if (!federation) throw notFound(`media from ${origin} is not available here (this server does not federate)`);
    let res: FederationResponse;
    try {
      res = await federation.request({
        destination: origin,
        method: 'GET',
        path: `/federation/v1/media/${encodeURIComponent(remoteId)}`,
        raw: true,
        maxBytes: limits.maxUploadBytes,
        timeoutMs: REMOTE_FETCH_TIMEOUT_MS,
      });
    } catch (err) {
      const failure = remoteFailure(err, origin, `media ${remoteId}`);
      if (failure.code === 'PARLEY_TOO_LARGE') {
        throw new ParleyError(
          502,
          'PARLEY_TOO_LARGE',
          `media ${remoteId} on ${origin} is larger than this server's cap of ${limits.maxUploadBytes} bytes`,
        );
      }
      throw failure;
    }
    if (!Buffer.isBuffer(res.body)) throw new ParleyError(502, 'PARLEY_UNAVAILABLE', `${origin} answered without a file`);
    const file = await store.receive(Readable.from([res.body]), limits.maxUploadBytes);
    try {
      const claimed = res.headers['content-type'];
      const row: MediaRow = {
        media_id: newMediaId(),
        uploader: null,
        origin,
        remote_media_id: remoteId,
        content_type: await this.#sniff(file),
        client_content_type: typeof claimed === 'string' ? claimed.slice(0, 255) : null,
        filename: filenameFromDisposition(res.headers['content-disposition']),
        size: file.size,
        sha256: file.sha256,
        created_ts: this.deps.clock.now(),
        last_access_ts: this.deps.clock.now(),
      };
      await store.commit(file.tempPath, row.media_id);
      let inserted = false;
      try {
        inserted = await media.insertRemote(row);
      } finally {
        if (!inserted) await store.discard(store.pathOf(row.media_id));
      }
      const stored = inserted ? row : await media.findRemote(origin, remoteId);
      if (!stored) throw new Error(`cached copy of ${origin}/${remoteId} vanished`);
      if (inserted) await this.#evict(stored.media_id);
      log.info({ origin, remote_media_id: remoteId, media_id: stored.media_id, size: stored.size }, 'remote media cached');
      return stored;
    } finally {
      await store.discard(file.tempPath);
    }
  }

  /** Where a stored file lives (tests and operators check eviction by it). */
  storedPath(mediaId: string): string {
    return this.deps.store.pathOf(mediaId);
  }

  /** Bytes held by cached copies of other servers' media now. */
  remoteCacheBytes(): Promise<number> {
    return this.deps.media.remoteCacheBytes();
  }

  // Keeps the remote cache under its cap, least recently used first, never the file just
  // fetched (its requester is about to read it). Rows go first; files after the commit, so a
  // crash leaves at worst an orphan file, never a row pointing at nothing.
  async #evict(keep: string): Promise<void> {
    const { db, media, store, limits, log } = this.deps;
    const evicted = await db.transaction((trx) => media.evictRemote(limits.remoteCacheMaxBytes, keep, trx));
    for (const row of evicted) {
      await store.discard(store.pathOf(row.media_id));
      this.remoteStats.evicted++;
      this.remoteStats.evictedBytes += Number(row.size);
    }
    if (evicted.length > 0) log.info({ evicted: evicted.length }, 'remote media evicted from the cache');
  }

  #missing(row: MediaRow): ParleyError {
    this.deps.log.warn({ media_id: row.media_id }, 'media row has no file on disk');
    return notFound(`no media ${row.media_id}`);
  }

  // Magic bytes first (file-type reads what it needs from disk); text only when nothing
  // binary matched; the client's claim is never consulted.
  async #sniff(file: ReceivedFile): Promise<string> {
    // file-type loads on the first upload, not with the server.
    const { fileTypeFromFile } = await import('file-type');
    const detected = await fileTypeFromFile(file.tempPath);
    if (detected) return detected.mime;
    if (file.isText) return sniffText(file.head);
    return 'application/octet-stream';
  }

  // The quota is checked again under a per-user lock: the first check ran before the
  // bytes arrived, and parallel uploads may have landed meanwhile. The file is moved into
  // place before the row commits, so a crash leaves at worst an orphan file, never a row
  // pointing at nothing.
  async #commit(row: MediaRow, tempPath: string): Promise<void> {
    const { db, media, store, limits } = this.deps;
    const uploader = row.uploader as string;
    await db.transaction(async (trx) => {
      await media.lockQuota(uploader, trx);
      if ((await media.bytesUsedBy(uploader, trx)) + row.size > limits.userQuotaBytes) throw overQuota(limits.userQuotaBytes);
      await store.commit(tempPath, row.media_id);
      try {
        await media.insert(row, trx);
      } catch (err) {
        await store.discard(store.pathOf(row.media_id));
        throw err;
      }
    });
  }
}

/** The media service on local disk under `data_dir/media`, as configured. */
export function createMediaService(
  config: Config,
  db: Db,
  clock: Clock,
  log: Logger,
  remoteFetchGate?: (userId: string) => Promise<void>,
): MediaService {
  return new MediaService({
    db,
    media: new MediaRepository(db),
    store: new MediaStore(path.join(config.data_dir, 'media')),
    clock,
    serverName: config.server_name,
    limits: {
      maxUploadBytes: config.media.max_upload_bytes,
      userQuotaBytes: config.media.user_quota_bytes,
      remoteCacheMaxBytes: config.media.remote_cache_max_bytes,
    },
    log,
    ...(remoteFetchGate ? { remoteFetchGate } : {}),
  });
}
