import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream, type ReadStream } from 'node:fs';
import { mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { finished, type Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';

/** Thrown while receiving when the byte count passes the limit given to `receive`. */
export class UploadLimitError extends Error {
  override name = 'UploadLimitError';
  constructor(readonly limitBytes: number) {
    super(`upload passed ${limitBytes} bytes`);
  }
}

export interface ReceivedFile {
  tempPath: string;
  size: number;
  sha256: string;
  /** The first bytes, for sniffing text formats. */
  head: Buffer;
  /** The whole file is valid UTF-8 without NUL bytes. */
  isText: boolean;
}

const HEAD_BYTES = 4096;
// Temp files older than this belong to an upload that died with its process.
const STALE_TEMP_MS = 3600_000;

/** Counts, hashes and inspects bytes on their way to disk, and stops at the limit. */
class UploadMeter extends Transform {
  size = 0;
  readonly hash = createHash('sha256');
  readonly headChunks: Buffer[] = [];
  headSize = 0;
  isText = true;
  readonly #utf8 = new TextDecoder('utf-8', { fatal: true });

  constructor(private readonly limitBytes: number) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.size += chunk.length;
    if (this.size > this.limitBytes) {
      callback(new UploadLimitError(this.limitBytes));
      return;
    }
    this.hash.update(chunk);
    if (this.headSize < HEAD_BYTES) {
      this.headChunks.push(chunk.subarray(0, HEAD_BYTES - this.headSize));
      this.headSize += Math.min(chunk.length, HEAD_BYTES - this.headSize);
    }
    if (this.isText) this.isText = !chunk.includes(0) && this.#decodes(chunk, true);
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    // A multi-byte sequence cut off at the end of the file is not valid UTF-8.
    if (this.isText) this.isText = this.#decodes(new Uint8Array(0), false);
    callback();
  }

  #decodes(bytes: Uint8Array, stream: boolean): boolean {
    try {
      this.#utf8.decode(bytes, { stream });
      return true;
    } catch {
      return false;
    }
  }
}

/**
 * Files on local disk: `<root>/tmp/<random>.part` while arriving, then renamed (atomic on
 * one filesystem) to `<root>/<id[0:2]>/<id[2:4]>/<id>`. Paths are only ever built from
 * IDs this server generated and found in the database.
 */
export class MediaStore {
  readonly #tmpDir: string;
  #ready: Promise<void> | undefined;

  constructor(private readonly root: string) {
    this.#tmpDir = path.join(root, 'tmp');
  }

  /**
   * Streams `source` to a temp file. Rejects with UploadLimitError as soon as more than
   * `limitBytes` arrive, deleting the partial file. `source` is only unpiped, never
   * destroyed, so the caller can still answer on its connection.
   */
  async receive(source: Readable, limitBytes: number): Promise<ReceivedFile> {
    await this.#prepare();
    const tempPath = path.join(this.#tmpDir, `${randomBytes(12).toString('hex')}.part`);
    const meter = new UploadMeter(limitBytes);
    const stopSourceWatch = finished(source, (err) => {
      if (err) meter.destroy(err);
    });
    const file = createWriteStream(tempPath, { flags: 'wx', mode: 0o600 });
    source.pipe(meter);
    try {
      await pipeline(meter, file);
    } catch (err) {
      source.unpipe(meter);
      // The file may still be opening (a client that hung up at once): removing it before
      // the stream has closed would race its creation.
      if (!file.closed) await new Promise<void>((resolve) => file.once('close', () => resolve()));
      await rm(tempPath, { force: true });
      throw err;
    } finally {
      stopSourceWatch();
    }
    return {
      tempPath,
      size: meter.size,
      sha256: meter.hash.digest('hex'),
      head: Buffer.concat(meter.headChunks),
      isText: meter.isText,
    };
  }

  /** Moves a received file to its final place. */
  async commit(tempPath: string, mediaId: string): Promise<void> {
    const target = this.pathOf(mediaId);
    await mkdir(path.dirname(target), { recursive: true, mode: 0o700 });
    await rename(tempPath, target);
  }

  async discard(filePath: string): Promise<void> {
    await rm(filePath, { force: true });
  }

  pathOf(mediaId: string): string {
    return path.join(this.root, mediaId.slice(0, 2), mediaId.slice(2, 4), mediaId);
  }

  /** Opens the stored bytes (inclusive range); null when the file is missing. */
  async open(mediaId: string, start?: number, end?: number): Promise<ReadStream | null> {
    try {
      const handle = await open(this.pathOf(mediaId), 'r');
      return handle.createReadStream({ start, end, autoClose: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
  }

  async exists(mediaId: string): Promise<boolean> {
    try {
      return (await stat(this.pathOf(mediaId))).isFile();
    } catch {
      return false;
    }
  }

  // Creates the directories once and sweeps temp files left by a crashed process.
  #prepare(): Promise<void> {
    this.#ready ??= (async () => {
      await mkdir(this.#tmpDir, { recursive: true, mode: 0o700 });
      const now = Date.now();
      for (const name of await readdir(this.#tmpDir)) {
        const file = path.join(this.#tmpDir, name);
        const info = await stat(file).catch(() => null);
        if (info && now - info.mtimeMs > STALE_TEMP_MS) await rm(file, { force: true });
      }
    })().catch((err) => {
      this.#ready = undefined;
      throw err;
    });
    return this.#ready;
  }
}
