import type { DeviceListAnswer, DeviceMailbox } from '@parley/schemas';
import type { E2eApi } from '../e2e.js';
import type { CryptoDevice } from './device.js';
import { equalBytes, fromB64u, fromUtf8, toB64u, utf8 } from './encoding.js';
import type { CryptoStore } from './store.js';

export type UserTrust = 'verified' | 'unverified' | 'key_changed';

/** A user's devices as this device trusts them: in the list their pinned key signed AND signed in. */
export interface TrustedDevices {
  userId: string;
  /** Devices to put in groups (signed by the pinned key and signed in on their server). */
  devices: string[];
  /** Every device of the signed list, signed in or not. */
  listed: string[];
  /** The server's signed-in devices (some maybe not in the signed list yet). */
  signedIn: string[];
  version: number;
  /** Mailbox queues the signed list names, by device ID (verified with the list's signature). */
  mailboxes: Map<string, DeviceMailbox>;
  /** The list the server gave us (for republishing our own). */
  answer: DeviceListAnswer;
}

/** Most users fetched in one keys/query. */
const QUERY_BATCH = 100;

/**
 * Device lists and trust per user for an E2eSession (docs/protocol.md): trust on first use through
 * CryptoDevice pins, verified marks kept in the CryptoStore (`trust/verified/<user>` = the key
 * that was verified), and a key change noticed when a list is signed by another key than the
 * pinned one (`trust/changed/<user>` = the new key, until `acceptKeyChange`).
 */
export class TrustBook {
  readonly #cache = new Map<string, TrustedDevices>();
  readonly #verified = new Map<string, string>();
  readonly #changed = new Map<string, string>();

  constructor(
    private readonly device: () => CryptoDevice,
    private readonly store: CryptoStore,
    private readonly e2e: E2eApi,
    private readonly onTrust: (userId: string, trust: UserTrust) => void,
  ) {}

  async load(): Promise<void> {
    for (const key of await this.store.list('trust/verified/')) {
      const v = await this.store.get(key);
      if (v !== undefined) this.#verified.set(key.slice('trust/verified/'.length), fromUtf8(v));
    }
    for (const key of await this.store.list('trust/changed/')) {
      const v = await this.store.get(key);
      if (v !== undefined) this.#changed.set(key.slice('trust/changed/'.length), fromUtf8(v));
    }
  }

  trust(userId: string): UserTrust {
    if (this.#changed.has(userId)) return 'key_changed';
    const pinned = this.device().userKey(userId);
    const mark = this.#verified.get(userId);
    return pinned !== undefined && mark !== undefined && mark === toB64u(pinned) ? 'verified' : 'unverified';
  }

  cached(userId: string): TrustedDevices | undefined {
    return this.#cache.get(userId);
  }

  forget(userId: string): void {
    this.#cache.delete(userId);
  }

  /** Fetches (or returns cached) trusted device lists; users whose list cannot be had are absent. */
  async lists(userIds: Iterable<string>, refresh = false): Promise<Map<string, TrustedDevices>> {
    const out = new Map<string, TrustedDevices>();
    const missing: string[] = [];
    for (const u of new Set(userIds)) {
      const c = this.#cache.get(u);
      if (c !== undefined && !refresh) out.set(u, c);
      else missing.push(u);
    }
    for (let i = 0; i < missing.length; i += QUERY_BATCH) {
      const batch = missing.slice(i, i + QUERY_BATCH);
      let answer: Awaited<ReturnType<E2eApi['queryDeviceLists']>>;
      try {
        answer = await this.e2e.queryDeviceLists(batch);
      } catch {
        continue; // unreachable: keep what we had
      }
      for (const u of batch) {
        const a = answer.device_lists[u];
        if (a === undefined) {
          const c = this.#cache.get(u);
          if (c !== undefined) out.set(u, c);
          continue;
        }
        const trusted = await this.accept(u, a);
        if (trusted !== null) out.set(u, trusted);
      }
    }
    return out;
  }

  /** Checks one answer against the pin (pinning on first sight); null when it cannot be trusted. */
  async accept(userId: string, answer: DeviceListAnswer): Promise<TrustedDevices | null> {
    if (answer.user_id !== userId) return null;
    const list = answer.device_list;
    if (list === null) {
      const none: TrustedDevices = { userId, devices: [], listed: [], signedIn: answer.devices, version: 0, mailboxes: new Map(), answer };
      this.#cache.set(userId, none);
      return none;
    }
    const check = await this.device().trustDeviceList(list, userId);
    if (!check.ok) {
      if (/key changed/.test(check.reason)) await this.#markChanged(userId, list.user_signing_key);
      return this.#cache.get(userId) ?? null;
    }
    const prev = this.#cache.get(userId);
    if (prev !== undefined && prev.version > check.list.version) return prev; // never roll back
    const signedIn = new Set(answer.devices);
    const listed = check.list.devices.map((d) => d.deviceId);
    const trusted: TrustedDevices = {
      userId,
      devices: listed.filter((d) => signedIn.has(d)),
      listed,
      signedIn: answer.devices,
      version: check.list.version,
      mailboxes: new Map(check.list.devices.flatMap((d) => (d.mailbox ? [[d.deviceId, d.mailbox] as const] : []))),
      answer,
    };
    this.#cache.set(userId, trusted);
    return trusted;
  }

  async #markChanged(userId: string, newKey: string): Promise<void> {
    if (this.#changed.get(userId) === newKey) return;
    this.#changed.set(userId, newKey);
    await this.store.put(`trust/changed/${userId}`, utf8(newKey));
    this.onTrust(userId, 'key_changed');
  }

  async markVerified(userId: string): Promise<void> {
    if (this.device().userKey(userId) === undefined) await this.lists([userId], true);
    const pinned = this.device().userKey(userId);
    if (pinned === undefined) throw new TypeError(`${userId}: no user signing key known yet`);
    if (this.#changed.has(userId)) throw new TypeError(`${userId}: key changed; acceptKeyChange first`);
    this.#verified.set(userId, toB64u(pinned));
    await this.store.put(`trust/verified/${userId}`, utf8(toB64u(pinned)));
    this.onTrust(userId, 'verified');
  }

  /** Pins the changed key (the user re-verified out of band); the old verified mark is dropped. */
  async acceptKeyChange(userId: string): Promise<void> {
    const newKey = this.#changed.get(userId);
    if (newKey === undefined) return;
    await this.device().pinUserKey(userId, fromB64u(newKey));
    this.#changed.delete(userId);
    await this.store.delete(`trust/changed/${userId}`);
    this.#verified.delete(userId);
    await this.store.delete(`trust/verified/${userId}`);
    this.#cache.delete(userId);
    await this.lists([userId], true);
    this.onTrust(userId, 'unverified');
  }

  /** Whether `key` is the key pinned for `userId`. */
  pinnedIs(userId: string, key: Uint8Array): boolean {
    const pinned = this.device().userKey(userId);
    return pinned !== undefined && equalBytes(pinned, key);
  }
}
