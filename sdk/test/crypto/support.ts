import type { MlsCommitContent, SignedDeviceList } from '@parley/schemas';
import {
  CryptoDevice,
  type CryptoDeviceOptions,
  type CryptoStore,
  MemoryCryptoStore,
  type PreparedCommit,
} from '../../src/crypto/index.js';

/** A user with devices in one process; the first device holds the user signing key. */
export interface TestUser {
  userId: string;
  devices: CryptoDevice[];
  list: SignedDeviceList;
}

export async function makeUser(
  userId: string,
  deviceCount: number,
  options: Partial<CryptoDeviceOptions> & { stores?: CryptoStore[] } = {},
): Promise<TestUser> {
  const devices: CryptoDevice[] = [];
  for (let i = 0; i < deviceCount; i++) {
    const store = options.stores?.[i] ?? new MemoryCryptoStore();
    devices.push(await CryptoDevice.open({ ...options, store, userId, deviceId: `DEV${i}` }));
  }
  const first = devices[0]!;
  const key = await first.createUserSigningKey();
  for (const d of devices.slice(1)) await d.acceptCertification(await first.certifyDevice(d.deviceId, d.signatureKey), key.publicKey);
  const list = await first.signDeviceList(
    devices.map((d) => d.ownSignedDevice()),
    1,
  );
  return { userId, devices, list };
}

/** Every device pins every user's key from their signed list (what keys/query would do). */
export async function introduce(users: TestUser[]): Promise<void> {
  for (const u of users) {
    for (const other of users) {
      for (const d of u.devices) {
        const check = await d.trustDeviceList(other.list, other.userId);
        if (!check.ok) throw new Error(check.reason);
      }
    }
  }
}

/** One claimed KeyPackage per device (what keys/claim would return). */
export async function claim(device: CryptoDevice): Promise<string> {
  const upload = await device.keyPackages.refill({ one_time_remaining: 99, has_last_resort: true }, 100, 100);
  const kp = upload?.key_packages?.[0];
  if (kp === undefined) throw new Error('no key package generated');
  return kp;
}

/**
 * The room host's part of MLS (docs/protocol.md): one total order of commits; the first commit
 * for the current epoch is sequenced, later ones for that epoch refused.
 */
export class TestHost {
  epoch = 0;
  readonly commits: MlsCommitContent[] = [];

  submit(content: MlsCommitContent): { ok: true; index: number } | { ok: false; status: 409; epoch: number } {
    if (content.epoch !== this.epoch) return { ok: false, status: 409, epoch: this.epoch };
    this.commits.push(content);
    this.epoch += 1;
    return { ok: true, index: this.commits.length - 1 };
  }
}

/** Prepares, sends and applies a commit; Welcomes are handed to the added devices. */
export async function commitAndFanOut(
  host: TestHost,
  committer: CryptoDevice,
  roomId: string,
  prepared: PreparedCommit,
  everyone: CryptoDevice[],
): Promise<void> {
  const sent = host.submit(prepared.content);
  if (!sent.ok) throw new Error(`commit refused at epoch ${sent.epoch}`);
  await committer.confirmCommit(roomId);
  for (const d of everyone) {
    if (d === committer) continue;
    const isNew = prepared.welcomeFor.some((w) => w.userId === d.userId && w.deviceId === d.deviceId);
    if (isNew) {
      const joined = await d.joinFromWelcome(roomId, prepared.welcome!);
      if (!joined.ok) throw new Error(`${d.userId}/${d.deviceId} join: ${joined.reason} ${joined.detail}`);
    } else if (await d.hasGroup(roomId)) {
      const r = await d.processCommit(roomId, prepared.content);
      if (!r.ok) throw new Error(`${d.userId}/${d.deviceId} commit: ${r.reason} ${r.detail}`);
    }
  }
}

export const text = (s: string) => new TextEncoder().encode(s);
export const untext = (b: Uint8Array) => new TextDecoder().decode(b);
