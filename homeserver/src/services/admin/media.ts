import path from 'node:path';
import { notFound } from '../../errors.js';
import type { AdminDirectoryRepository } from '../../repositories/admin/directory.js';
import type { Clock } from '../clock.js';
import { MediaStore } from '../media-store.js';

/** Media as an admin manages it: usage, quarantine (served to nobody, kept) and delete. */
export class AdminMedia {
  readonly #store: MediaStore;

  constructor(
    dataDir: string,
    private readonly directory: AdminDirectoryRepository,
    private readonly clock: Clock,
  ) {
    this.#store = new MediaStore(path.join(dataDir, 'media'));
  }

  usage() {
    return this.directory.mediaUsage(20);
  }

  list(opts: { uploader?: string; quarantined?: boolean; limit: number; offset: number; order: 'newest' | 'largest' }) {
    return this.directory.listMedia(opts);
  }

  async quarantine(mediaId: string, quarantined: boolean, by: string): Promise<void> {
    const ok = await this.directory.setQuarantine(mediaId, quarantined ? by : null, quarantined ? this.clock.now() : null);
    if (!ok) throw notFound(`no media ${mediaId}`);
  }

  /** The row goes first (the file is never served without it), then the bytes. */
  async delete(mediaId: string): Promise<void> {
    if (!(await this.directory.deleteMedia(mediaId))) throw notFound(`no media ${mediaId}`);
    await this.#store.discard(this.#store.pathOf(mediaId));
  }
}
