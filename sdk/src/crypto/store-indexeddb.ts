/// <reference lib="dom" />
import { assertStoreKey, type CryptoStore } from './store.js';

const STORE = 'kv';

/**
 * A CryptoStore in one IndexedDB database (browser). Each call is its own readwrite
 * transaction, and `put` resolves on the transaction's `complete`, i.e. once it is durable
 * (`durability: 'strict'` where the browser supports the hint).
 */
export class IndexedDbCryptoStore implements CryptoStore {
  #db: Promise<IDBDatabase> | undefined;

  constructor(
    readonly name: string,
    private readonly factory: IDBFactory = globalThis.indexedDB,
  ) {
    if (typeof name !== 'string' || name.length === 0) throw new TypeError('name: expected a database name');
    if (factory === undefined) throw new TypeError('no IndexedDB in this environment; pass a factory');
  }

  #open(): Promise<IDBDatabase> {
    this.#db ??= new Promise((resolve, reject) => {
      const req = this.factory.open(this.name, 1);
      req.onupgradeneeded = () => {
        if (!req.result.objectStoreNames.contains(STORE)) req.result.createObjectStore(STORE);
      };
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error ?? new Error(`IndexedDB ${this.name}: open failed`));
      req.onblocked = () => reject(new Error(`IndexedDB ${this.name}: open blocked by another tab`));
    });
    return this.#db;
  }

  async #run<T>(mode: IDBTransactionMode, op: (s: IDBObjectStore) => IDBRequest<T>): Promise<T> {
    const db = await this.#open();
    return new Promise<T>((resolve, reject) => {
      const tx = db.transaction(STORE, mode, { durability: 'strict' });
      const req = op(tx.objectStore(STORE));
      tx.oncomplete = () => resolve(req.result);
      tx.onerror = () => reject(tx.error ?? req.error ?? new Error('IndexedDB transaction failed'));
      tx.onabort = () => reject(tx.error ?? new Error('IndexedDB transaction aborted'));
    });
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    const v = await this.#run('readonly', (s) => s.get(key));
    return v instanceof Uint8Array ? v : v instanceof ArrayBuffer ? new Uint8Array(v) : undefined;
  }

  async put(key: string, value: Uint8Array): Promise<void> {
    assertStoreKey(key);
    await this.#run('readwrite', (s) => s.put(value.slice(), key));
  }

  async delete(key: string): Promise<void> {
    await this.#run('readwrite', (s) => s.delete(key));
  }

  async list(prefix: string): Promise<string[]> {
    // '\uffff' sorts after every character a key uses, so this is the prefix range.
    const range = IDBKeyRange.bound(prefix, `${prefix}\uffff`);
    const keys = await this.#run('readonly', (s) => s.getAllKeys(range));
    return keys.filter((k): k is string => typeof k === 'string');
  }
}
