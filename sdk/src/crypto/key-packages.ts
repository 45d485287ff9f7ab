import {
  type CiphersuiteImpl,
  type Credential,
  decodeMlsMessage,
  defaultCapabilities,
  defaultLifetime,
  encodeMlsMessage,
  generateKeyPackageWithKey,
  type KeyPackage,
  type PrivateKeyPackage,
} from 'ts-mls';
import { makeKeyPackageRef } from 'ts-mls/keyPackage.js';
import { fromB64u, fromUtf8, toB64u, utf8 } from './encoding.js';
import type { CryptoStore } from './store.js';

/** One-time packages a device keeps on its server, and the count below which it refills. */
export const KEY_PACKAGE_TARGET = 100;
export const KEY_PACKAGE_LOW_WATER = 20;
const PREFIX = 'kp/';

interface StoredKeyPackage {
  public: string;
  init: string;
  hpke: string;
  last_resort: boolean;
  created_ts: number;
}

/** What to send to `POST /api/v1/keys/upload` (schemas KeyUploadRequest). */
export interface KeyUpload {
  key_packages?: string[];
  last_resort?: string;
}

/**
 * The device's KeyPackages (RFC 9420 §10): the private halves stay here, keyed by
 * KeyPackageRef, until a Welcome uses one. A one-time package is deleted once joined with;
 * the last-resort one is kept (RFC 9420 §16.8 allows reuse of last-resort packages only).
 */
export class KeyPackagePool {
  constructor(
    private readonly store: CryptoStore,
    private readonly impl: CiphersuiteImpl,
    private readonly credential: Credential,
    private readonly signatureKeys: { signKey: Uint8Array; publicKey: Uint8Array },
    private readonly now: () => number,
  ) {}

  async #generate(lastResort: boolean): Promise<string> {
    const kp = await generateKeyPackageWithKey(this.credential, defaultCapabilities(), defaultLifetime, [], this.signatureKeys, this.impl);
    const ref = toB64u(await makeKeyPackageRef(kp.publicPackage, this.impl.hash));
    const encoded = toB64u(encodeMlsMessage({ version: 'mls10', wireformat: 'mls_key_package', keyPackage: kp.publicPackage }));
    const stored: StoredKeyPackage = {
      public: encoded,
      init: toB64u(kp.privatePackage.initPrivateKey),
      hpke: toB64u(kp.privatePackage.hpkePrivateKey),
      last_resort: lastResort,
      created_ts: this.now(),
    };
    await this.store.put(PREFIX + ref, utf8(JSON.stringify(stored)));
    return encoded;
  }

  /**
   * Packages to upload given what the server holds: nothing while at or above the low-water
   * mark, else enough one-time packages to reach the target, plus a last-resort package when
   * the server has none.
   */
  async refill(
    server: { one_time_remaining: number; has_last_resort: boolean },
    target = KEY_PACKAGE_TARGET,
    lowWater = KEY_PACKAGE_LOW_WATER,
  ): Promise<KeyUpload | null> {
    const upload: KeyUpload = {};
    if (server.one_time_remaining < lowWater) {
      const n = Math.min(100, Math.max(0, target - server.one_time_remaining));
      const packages: string[] = [];
      for (let i = 0; i < n; i++) packages.push(await this.#generate(false));
      upload.key_packages = packages;
    }
    if (!server.has_last_resort) upload.last_resort = await this.#generate(true);
    return upload.key_packages === undefined && upload.last_resort === undefined ? null : upload;
  }

  /** The private half of a package this device generated, by its KeyPackageRef. */
  async find(ref: Uint8Array): Promise<{ publicPackage: KeyPackage; privatePackage: PrivateKeyPackage; lastResort: boolean } | null> {
    const raw = await this.store.get(PREFIX + toB64u(ref));
    if (raw === undefined) return null;
    const stored = JSON.parse(fromUtf8(raw)) as StoredKeyPackage;
    const decoded = decodeMlsMessage(fromB64u(stored.public), 0)?.[0];
    if (decoded?.wireformat !== 'mls_key_package') throw new Error('stored key package is corrupt');
    return {
      publicPackage: decoded.keyPackage,
      privatePackage: {
        initPrivateKey: fromB64u(stored.init),
        hpkePrivateKey: fromB64u(stored.hpke),
        signaturePrivateKey: this.signatureKeys.signKey,
      },
      lastResort: stored.last_resort,
    };
  }

  /** Forgets a one-time package once a Welcome used it (forward secrecy of the init key). */
  async consume(ref: Uint8Array): Promise<void> {
    const found = await this.find(ref);
    if (found !== null && !found.lastResort) await this.store.delete(PREFIX + toB64u(ref));
  }

  async count(): Promise<number> {
    return (await this.store.list(PREFIX)).length;
  }
}

/** Decodes a KeyPackage from the wire (MLSMessage-wrapped or bare); null when it is not one. */
export function decodeKeyPackage(b64: string): KeyPackage | null {
  try {
    const msg = decodeMlsMessage(fromB64u(b64, 'key_package'), 0)?.[0];
    return msg?.wireformat === 'mls_key_package' ? msg.keyPackage : null;
  } catch {
    return null;
  }
}
