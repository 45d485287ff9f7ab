import type { DeviceMailbox, SignedDevice } from '@parley/schemas';
import type { E2eApi } from '../e2e.js';
import { isParleyApiError } from '../errors.js';
import { BACKUP_ALGORITHM, BackupError, formatRecoveryKey, newRecoveryKey, parseRecoveryKey } from './backup.js';
import type { CryptoDevice } from './device.js';
import { fromB64u, toB64u } from './encoding.js';
import type { TrustBook } from './session-trust.js';
import type { CryptoStore } from './store.js';

const RECOVERY_KEY = 'session/recovery-key';
/** To-device request of a new device to the user's other devices: certify me (no recovery key at hand). */
export const DEVICE_APPROVAL_TYPE = 'parley.device_approval';
const SIGNATURE_KEY_RE = /^[A-Za-z0-9_-]{43}$/;
/** Approval requests kept at once (a flood from a compromised session cannot grow memory). */
const MAX_REQUESTS = 20;
/** Attempts at a write another device of the user may race (device list, backup). */
const MAX_RACES = 4;

/**
 * This device's own keys for an E2eSession: the user signing key on first use, the signed
 * device list, key packages, and the key backup under the recovery key.
 */
export class OwnKeys {
  /** Devices of this user that asked to be approved: device ID → MLS signature key (b64u). */
  readonly requests = new Map<string, string>();

  constructor(
    private readonly device: () => CryptoDevice,
    private readonly store: CryptoStore,
    private readonly e2e: E2eApi,
    private readonly trust: TrustBook,
    /** This device's published mailbox queue, if it has one. */
    private readonly mailbox: () => DeviceMailbox | undefined = () => undefined,
  ) {}

  /** Makes sure the device is certified (or says it needs the recovery key); returns `needsRecovery`. */
  async bootstrap(): Promise<boolean> {
    const device = this.device();
    if (!device.certified) {
      const answer = await this.e2e.deviceList(device.userId).catch(() => null);
      const backup = await this.e2e.backup();
      if ((answer === null || answer.device_list === null) && backup === null) {
        await device.createUserSigningKey();
      } else {
        return true;
      }
    }
    await this.publishDeviceList();
    await this.refillKeyPackages();
    return false;
  }

  /** Signs and publishes the user's device list with this device in it (devices signed out are dropped). */
  async publishDeviceList(extra: SignedDevice[] = []): Promise<void> {
    const device = this.device();
    if (device.userSigningKey === null) return; // only devices holding the user key sign lists
    for (let attempt = 0; attempt < MAX_RACES; attempt++) {
      const answer = await this.e2e.deviceList(device.userId);
      const current = answer.device_list;
      let entries: SignedDevice[] = [];
      if (current !== null) {
        const trusted = await this.trust.accept(device.userId, answer);
        if (trusted !== null && current.user_signing_key === toB64u(device.userSigningKey)) {
          const signedIn = new Set(answer.devices);
          entries = current.devices.filter(
            (d) => d.device_id !== device.deviceId && signedIn.has(d.device_id) && !extra.some((x) => x.device_id === d.device_id),
          );
        }
      }
      const mailbox = this.mailbox();
      const own: SignedDevice = { ...device.ownSignedDevice(), ...(mailbox ? { mailbox } : {}) };
      const sameMailbox = (d: SignedDevice) =>
        d.mailbox?.url === own.mailbox?.url && d.mailbox?.send_id === own.mailbox?.send_id && d.mailbox?.seal_key === own.mailbox?.seal_key;
      const unchanged =
        current !== null &&
        current.user_signing_key === toB64u(device.userSigningKey) &&
        current.devices.some((d) => d.device_id === own.device_id && d.signature_key === own.signature_key && sameMailbox(d)) &&
        extra.length === 0 &&
        current.devices.length === entries.length + 1;
      if (unchanged) return;
      try {
        await this.e2e.putDeviceList(await device.signDeviceList([...entries, ...extra, own], (current?.version ?? 0) + 1));
        this.trust.forget(device.userId);
        return;
      } catch (err) {
        if (!(isParleyApiError(err) && err.status === 409)) throw err;
      }
    }
  }

  /** Asks the user's other devices to certify this one (shown to the user there; `approveDevice`). */
  async requestApproval(): Promise<void> {
    const device = this.device();
    if (device.certified) return;
    const content = { device_id: device.deviceId, signature_key: toB64u(device.signatureKey) };
    await this.e2e.sendToDevice(DEVICE_APPROVAL_TYPE, { [device.userId]: { '*': content } });
  }

  /** A request from another device of this user; true when it is new and this device can approve it. */
  noteRequest(sender: string, content: Record<string, unknown>): boolean {
    const device = this.device();
    const { device_id: deviceId, signature_key: key } = content;
    if (sender !== device.userId || device.userSigningKey === null) return false;
    if (typeof deviceId !== 'string' || deviceId === device.deviceId || deviceId.length > 255) return false;
    if (typeof key !== 'string' || !SIGNATURE_KEY_RE.test(key) || this.requests.get(deviceId) === key) return false;
    if (this.requests.size >= MAX_REQUESTS) this.requests.delete(this.requests.keys().next().value as string);
    this.requests.set(deviceId, key);
    return true;
  }

  /** Certifies a device that asked (the user confirmed it is theirs) and publishes it in the device list. */
  async approveDevice(deviceId: string): Promise<void> {
    const key = this.requests.get(deviceId);
    if (key === undefined) throw new TypeError(`${deviceId}: no approval request from that device`);
    const signed = await this.device().certifyDevice(deviceId, fromB64u(key));
    await this.publishDeviceList([signed]);
    this.requests.delete(deviceId);
  }

  /**
   * An uncertified device: if the user's list (its key pinned on first sight) now holds this
   * device with its own key, take that certification. True when the device is certified.
   */
  async checkApproval(): Promise<boolean> {
    const device = this.device();
    if (device.certified) return true;
    const answer = await this.e2e.deviceList(device.userId);
    const list = answer.device_list;
    const entry = list?.devices.find((d) => d.device_id === device.deviceId && d.signature_key === toB64u(device.signatureKey));
    if (list === null || list === undefined || entry === undefined) return false;
    const check = await device.trustDeviceList(list, device.userId);
    if (!check.ok) return false;
    await device.acceptCertification(entry, check.list.userSigningKey);
    await this.refillKeyPackages();
    return true;
  }

  async refillKeyPackages(): Promise<void> {
    const device = this.device();
    if (!device.certified) return;
    const upload = await device.keyPackages.refill(await this.e2e.keyPackageCount());
    if (upload !== null) await this.e2e.uploadKeyPackages(upload);
  }

  async recoveryKey(): Promise<Uint8Array | undefined> {
    return this.store.get(RECOVERY_KEY);
  }

  /** A new recovery key, kept on this device so it can back up after commits; returns it formatted. */
  async setupRecovery(): Promise<string> {
    const key = newRecoveryKey();
    await this.store.put(RECOVERY_KEY, key);
    await this.uploadBackup();
    return formatRecoveryKey(key);
  }

  /** Seals this device's keys and groups and replaces the server's backup (retrying a concurrent write). */
  async uploadBackup(): Promise<boolean> {
    const key = await this.recoveryKey();
    const device = this.device();
    if (key === undefined || device.userSigningKey === null) return false;
    for (let attempt = 0; attempt < MAX_RACES; attempt++) {
      const current = await this.e2e.backup();
      const sealed = await device.exportBackup(key);
      try {
        await this.e2e.putBackup(toB64u(sealed), BACKUP_ALGORITHM, current?.version ?? null);
        return true;
      } catch (err) {
        if (!(isParleyApiError(err) && err.status === 409)) throw err;
      }
    }
    return false;
  }

  /** Restores from the server backup; throws BackupError('wrong_recovery_key') on a wrong key. */
  async restore(recoveryKeyText: string): Promise<string[]> {
    const key = parseRecoveryKey(recoveryKeyText);
    const backup = await this.e2e.backup();
    if (backup === null) throw new BackupError('malformed', 'there is no key backup on the server');
    if (backup.algorithm !== BACKUP_ALGORITHM) throw new BackupError('unsupported_version', `backup algorithm ${backup.algorithm}`);
    const rooms = await this.device().restoreBackup(key, fromB64u(backup.ciphertext, 'backup'));
    await this.store.put(RECOVERY_KEY, key);
    await this.publishDeviceList();
    await this.refillKeyPackages();
    return rooms;
  }
}
