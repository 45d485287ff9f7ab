/**
 * Where a device keeps its key material and group states, so a reload or restart loses
 * nothing (docs/protocol.md): IndexedDB in the browser (`IndexedDbCryptoStore`), one file per key
 * in Node (`FileCryptoStore`, for bots, tests and the bench), memory for throwaway devices.
 * Keys are short strings (`group/<room id>`, `kp/<ref>`); values are opaque bytes. Every
 * `put` is durable when its promise resolves: a ratchet step that was not stored before a
 * ciphertext left the device could be reused after a crash.
 */
export interface CryptoStore {
  get(key: string): Promise<Uint8Array | undefined>;
  put(key: string, value: Uint8Array): Promise<void>;
  delete(key: string): Promise<void>;
  /** Every key starting with `prefix`, in no particular order. */
  list(prefix: string): Promise<string[]>;
}

export function assertStoreKey(key: string): void {
  if (typeof key !== 'string' || key.length === 0 || key.length > 512) throw new TypeError('key: expected a string of 1–512 characters');
}

export class MemoryCryptoStore implements CryptoStore {
  readonly #data = new Map<string, Uint8Array>();

  async get(key: string): Promise<Uint8Array | undefined> {
    const v = this.#data.get(key);
    return v === undefined ? undefined : v.slice();
  }
  async put(key: string, value: Uint8Array): Promise<void> {
    assertStoreKey(key);
    this.#data.set(key, value.slice());
  }
  async delete(key: string): Promise<void> {
    this.#data.delete(key);
  }
  async list(prefix: string): Promise<string[]> {
    return [...this.#data.keys()].filter((k) => k.startsWith(prefix));
  }
}
