import { mkdir, open, readdir, readFile, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { assertStoreKey, type CryptoStore } from './store.js';

/**
 * A CryptoStore in one directory, one file per key (Node only: bots, tests, the bench).
 * A write goes to a temporary file that is flushed and renamed over the old one, so a crash
 * leaves either the old value or the new one, never half of either.
 */
export class FileCryptoStore implements CryptoStore {
  #ready: Promise<unknown> | undefined;
  #tmp = 0;

  constructor(readonly dir: string) {
    if (typeof dir !== 'string' || dir.length === 0) throw new TypeError('dir: expected a directory path');
  }

  #path(key: string): string {
    assertStoreKey(key);
    return join(this.dir, `${encodeURIComponent(key)}.bin`);
  }

  async #mkdir(): Promise<void> {
    this.#ready ??= mkdir(this.dir, { recursive: true, mode: 0o700 });
    await this.#ready;
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    try {
      return new Uint8Array(await readFile(this.#path(key)));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  async put(key: string, value: Uint8Array): Promise<void> {
    const path = this.#path(key);
    await this.#mkdir();
    this.#tmp += 1;
    const tmp = `${path}.${process.pid}.${this.#tmp}.tmp`;
    const file = await open(tmp, 'w', 0o600);
    try {
      await file.writeFile(value);
      await file.datasync();
    } finally {
      await file.close();
    }
    await rename(tmp, path);
  }

  async delete(key: string): Promise<void> {
    try {
      await unlink(this.#path(key));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }

  async list(prefix: string): Promise<string[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    return names
      .filter((n) => n.endsWith('.bin'))
      .map((n) => decodeURIComponent(n.slice(0, -4)))
      .filter((k) => k.startsWith(prefix));
  }
}
