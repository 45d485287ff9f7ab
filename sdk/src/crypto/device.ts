import type { EncryptedContent, MlsCommitContent, SignedDevice, SignedDeviceList } from '@parley/schemas';
import type { KeyRetentionConfig } from 'ts-mls';
import { openBackup, sealBackup } from './backup.js';
import * as commits from './device-commits.js';
import { type CommitResult, DeviceGroups, type PreparedCommit } from './device-groups.js';
import * as joins from './device-joins.js';
import * as messages from './device-messages.js';
import { fromB64u, fromUtf8, toB64u, utf8 } from './encoding.js';
import { clientConfig, DEFAULT_KEY_RETENTION, decodeState, encodeState, type Member, members } from './group-state.js';
import {
  buildDeviceList,
  credentialBytes,
  type DeviceIdentity,
  type DeviceListCheck,
  deviceCredential,
  type KeyDirectory,
  newUserSigningKey,
  parleyAuthService,
  signDevice,
  type UserSigningKey,
  userSigningKeyFromSeed,
  verifyDeviceList,
} from './identity.js';
import { KeyPackagePool } from './key-packages.js';
import type { SignerKind } from './primitives.js';
import type { CryptoStore } from './store.js';
import { loadSuite, type Suite } from './suite.js';

export { type CommitResult, INLINE_GROUP_INFO_MEMBERS, type PreparedCommit } from './device-groups.js';
export type { JoinResult } from './device-joins.js';
export { type DecryptResult, MAX_PLAINTEXT_BYTES } from './device-messages.js';

export interface CryptoDeviceOptions {
  store: CryptoStore;
  userId: string;
  deviceId: string;
  /**
   * Whether `userId` is a member of `roomId` in the room state. Messages and commits from
   * leaves whose user is not are refused as `not_member` (docs/protocol.md). Default: everyone is.
   */
  isRoomMember?: (roomId: string, userId: string) => boolean;
  signer?: SignerKind;
  keyRetention?: KeyRetentionConfig;
  /**
   * Keep, for each retained epoch, its secret tree as it was when the epoch began, so a key
   * backup lets a new device read every message of those epochs, read here or not. The
   * price is forward secrecy on this device: its store then holds the keys of every message
   * of the last 8 epochs. Turn on when the user sets up key backup. Default false: a backup
   * covers only messages this device has not read yet.
   */
  backupHistory?: boolean;
  now?: () => number;
}

interface StoredDevice {
  user_id: string;
  device_id: string;
  signature_seed: string;
  signature_key: string;
  credential_signature: string | null;
  user_signing_key: string | null;
}

/**
 * One device's end-to-end crypto (docs/protocol.md): its MLS identity and key packages, the MLS
 * group of each encrypted room (group ID = room ID), the keys it pinned for other users.
 * Every change is in the store before the call that made it resolves.
 *
 * The commit rule: a commit is prepared (`prepareCommit`), sent as `room.mls.commit`, and
 * applied only when the host sequenced it (`confirmCommit`, or `processCommit` on the echo).
 * The host sequences the first commit for each epoch; a loser gets 409, processes the
 * winner, calls `discardCommit` and prepares again on the new epoch.
 */
export class CryptoDevice implements KeyDirectory {
  readonly userId: string;
  readonly deviceId: string;
  readonly keyPackages: KeyPackagePool;
  readonly #store: CryptoStore;
  readonly #suite: Suite;
  readonly #g: DeviceGroups;
  readonly #signatureKeys: { signKey: Uint8Array; publicKey: Uint8Array };
  readonly #isRoomMember: (roomId: string, userId: string) => boolean;
  readonly #now: () => number;
  #stored: StoredDevice;
  #userKey: UserSigningKey | null;
  readonly #pins: Map<string, Uint8Array>;

  private constructor(init: {
    options: CryptoDeviceOptions;
    suite: Suite;
    stored: StoredDevice;
    userKey: UserSigningKey | null;
    pins: Map<string, Uint8Array>;
  }) {
    const { options, suite, stored } = init;
    this.userId = options.userId;
    this.deviceId = options.deviceId;
    this.#store = options.store;
    this.#suite = suite;
    this.#stored = stored;
    this.#userKey = init.userKey;
    this.#pins = init.pins;
    this.#isRoomMember = options.isRoomMember ?? (() => true);
    this.#now = options.now ?? Date.now;
    const seed = fromB64u(stored.signature_seed);
    this.#signatureKeys = { signKey: seed, publicKey: fromB64u(stored.signature_key) };
    const isRoomMember = this.#isRoomMember;
    let g: DeviceGroups | undefined;
    const config = clientConfig(
      parleyAuthService(suite.primitives, this, (userId) => g?.unknownUsers.add(userId)),
      options.keyRetention ?? DEFAULT_KEY_RETENTION,
    );
    g = new DeviceGroups(options.store, suite, config, options.backupHistory === true, {
      userId: this.userId,
      deviceId: this.deviceId,
      credential: () => this.#credential(),
      signatureKeys: this.#signatureKeys,
      keyPackages: () => this.keyPackages,
      isRoomMember,
      certified: () => this.certified,
    });
    this.#g = g;
    this.keyPackages = new KeyPackagePool(options.store, suite.impl, this.#credential(), this.#signatureKeys, this.#now);
  }

  /** Loads this device from its store, or creates its MLS signature key on first use. */
  static async open(options: CryptoDeviceOptions): Promise<CryptoDevice> {
    if (typeof options?.userId !== 'string' || typeof options.deviceId !== 'string')
      throw new TypeError('userId and deviceId: expected strings');
    if (options.store === undefined) throw new TypeError('store: expected a CryptoStore');
    const suite = await loadSuite({ signer: options.signer });
    const p = suite.primitives;
    let stored: StoredDevice;
    const raw = await options.store.get('device');
    if (raw !== undefined) {
      stored = JSON.parse(fromUtf8(raw)) as StoredDevice;
      if (stored.user_id !== options.userId || stored.device_id !== options.deviceId) {
        throw new TypeError(`store belongs to ${stored.user_id} / ${stored.device_id}, not ${options.userId} / ${options.deviceId}`);
      }
    } else {
      const seed = p.randomBytes(32);
      stored = {
        user_id: options.userId,
        device_id: options.deviceId,
        signature_seed: toB64u(seed),
        signature_key: toB64u(p.ed25519PublicKey(seed)),
        credential_signature: null,
        user_signing_key: null,
      };
      await options.store.put('device', utf8(JSON.stringify(stored)));
    }
    const userKeyRaw = await options.store.get('user-key');
    const userKey = userKeyRaw === undefined ? null : userSigningKeyFromSeed(p, options.userId, userKeyRaw);
    const pinsRaw = await options.store.get('pins');
    const pins = new Map<string, Uint8Array>(
      pinsRaw === undefined
        ? []
        : Object.entries(JSON.parse(fromUtf8(pinsRaw)) as Record<string, string>).map(([u, k]) => [u, fromB64u(k)]),
    );
    return new CryptoDevice({ options, suite, stored, userKey, pins });
  }

  get signer(): SignerKind {
    return this.#suite.primitives.signer;
  }

  /** The device's MLS leaf signature key. */
  get signatureKey(): Uint8Array {
    return this.#signatureKeys.publicKey;
  }

  get userSigningKey(): Uint8Array | null {
    return this.#userKey?.publicKey ?? null;
  }

  /** Whether the user key signed this device's credential (needed before it can join groups). */
  get certified(): boolean {
    return this.#stored.credential_signature !== null;
  }

  #credential() {
    const identity: DeviceIdentity = {
      user_id: this.userId,
      device_id: this.deviceId,
      user_signing_key: this.#stored.user_signing_key ?? '',
      credential_signature: this.#stored.credential_signature ?? '',
    };
    return deviceCredential(identity);
  }

  // ---- user signing key, device lists, pins ----------------------------------------------------

  /** Creates the user's signing key on this (first) device and certifies the device with it. */
  async createUserSigningKey(): Promise<UserSigningKey> {
    if (this.#userKey !== null) throw new TypeError('this device already holds a user signing key');
    const key = newUserSigningKey(this.#suite.primitives, this.userId);
    await this.#adoptUserKey(key);
    return key;
  }

  /** Installs the user signing key (from a key backup) and certifies this device with it. */
  async importUserSigningKey(seed: Uint8Array): Promise<void> {
    await this.#adoptUserKey(userSigningKeyFromSeed(this.#suite.primitives, this.userId, seed));
  }

  async #adoptUserKey(key: UserSigningKey): Promise<void> {
    await this.#store.put('user-key', key.seed);
    this.#userKey = key;
    const signed = await signDevice(this.#suite.primitives, key, this.deviceId, this.#signatureKeys.publicKey);
    this.#stored = { ...this.#stored, credential_signature: signed.credential_signature, user_signing_key: toB64u(key.publicKey) };
    await this.#store.put('device', utf8(JSON.stringify(this.#stored)));
    await this.pinUserKey(this.userId, key.publicKey);
    await this.#resetKeyPackages();
  }

  /** This device's entry for its user's device list. */
  ownSignedDevice(): SignedDevice {
    if (this.#stored.credential_signature === null) throw new TypeError('device not certified by a user signing key yet');
    return { device_id: this.deviceId, signature_key: this.#stored.signature_key, credential_signature: this.#stored.credential_signature };
  }

  /** Certifies another device of the same user (e.g. a new login approved from this one). */
  async certifyDevice(deviceId: string, signatureKey: Uint8Array): Promise<SignedDevice> {
    if (this.#userKey === null) throw new TypeError('this device holds no user signing key');
    return signDevice(this.#suite.primitives, this.#userKey, deviceId, signatureKey);
  }

  /**
   * Installs a certification another device of this user made for this one (`certifyDevice`
   * there): this device can then join groups without holding the user signing key.
   */
  async acceptCertification(signed: SignedDevice, userSigningKey: Uint8Array): Promise<void> {
    if (signed.device_id !== this.deviceId || signed.signature_key !== this.#stored.signature_key) {
      throw new TypeError('certification: for another device or key');
    }
    const ok = await this.#suite.primitives.ed25519Verify(
      userSigningKey,
      credentialBytes(this.userId, this.deviceId, this.#signatureKeys.publicKey),
      fromB64u(signed.credential_signature, 'credential_signature'),
    );
    if (!ok) throw new TypeError('certification: not signed by that user signing key');
    this.#stored = { ...this.#stored, credential_signature: signed.credential_signature, user_signing_key: toB64u(userSigningKey) };
    await this.#store.put('device', utf8(JSON.stringify(this.#stored)));
    await this.pinUserKey(this.userId, userSigningKey);
    await this.#resetKeyPackages();
  }

  async #resetKeyPackages(): Promise<void> {
    // Key packages carry the credential: ones made before certification are useless now.
    for (const k of await this.#store.list('kp/')) await this.#store.delete(k);
    (this as { keyPackages: KeyPackagePool }).keyPackages = new KeyPackagePool(
      this.#store,
      this.#suite.impl,
      this.#credential(),
      this.#signatureKeys,
      this.#now,
    );
  }

  /** Signs a new device list for `PUT /api/v1/keys/device_list`. */
  async signDeviceList(devices: readonly SignedDevice[], version: number): Promise<SignedDeviceList> {
    if (this.#userKey === null) throw new TypeError('this device holds no user signing key');
    return buildDeviceList(this.#suite.primitives, this.#userKey, devices, version);
  }

  /**
   * Checks a device list fetched for `userId` against the key pinned for them, pinning the
   * list's key on first sight (trust on first use; verifying by safety number upgrades it).
   * A list signed by another key than the pinned one is refused with `key changed`: the app
   * warns loudly and only `pinUserKey` (after the user re-verified) accepts the new key.
   */
  async trustDeviceList(list: SignedDeviceList, userId: string): Promise<DeviceListCheck> {
    const pinned = this.#pins.get(userId);
    const check = await verifyDeviceList(this.#suite.primitives, list, userId, pinned);
    if (check.ok && pinned === undefined) await this.pinUserKey(userId, check.list.userSigningKey);
    return check;
  }

  async pinUserKey(userId: string, key: Uint8Array): Promise<void> {
    this.#pins.set(userId, key);
    await this.#store.put('pins', utf8(JSON.stringify(Object.fromEntries([...this.#pins].map(([u, k]) => [u, toB64u(k)])))));
  }

  /** KeyDirectory: the user signing key this device trusts for `userId`. */
  userKey(userId: string): Uint8Array | undefined {
    return this.#pins.get(userId);
  }

  // ---- groups (device-commits.ts, device-joins.ts, device-messages.ts) ---------------------------

  async hasGroup(roomId: string): Promise<boolean> {
    return (await this.#g.state(roomId)) !== undefined;
  }

  /** The group's current epoch, or null when this device is not in it. */
  async epoch(roomId: string): Promise<number | null> {
    const state = await this.#g.state(roomId);
    return state === undefined ? null : Number(state.groupContext.epoch);
  }

  async members(roomId: string): Promise<Member[]> {
    const state = await this.#g.state(roomId);
    return state === undefined ? [] : members(state.ratchetTree);
  }

  /** Starts the MLS group of a room this user just made encrypted (epoch 0, only this device). */
  createGroup(roomId: string): Promise<void> {
    return commits.createGroup(this.#g, roomId);
  }

  /**
   * Prepares a commit that adds devices (by claimed KeyPackage), removes devices (all of a
   * user's when `deviceId` is omitted) and/or refreshes this device's own keys (`update`).
   * Nothing changes locally until the host sequenced it: see `confirmCommit`.
   */
  prepareCommit(
    roomId: string,
    changes: { add?: string[]; remove?: { userId: string; deviceId?: string }[]; update?: boolean },
  ): Promise<PreparedCommit> {
    return commits.prepareCommit(this.#g, roomId, changes);
  }

  /** The host sequenced this device's prepared commit: move to the new epoch. */
  confirmCommit(roomId: string): Promise<number> {
    return commits.confirmCommit(this.#g, roomId);
  }

  /** The host refused this device's commit (another won the epoch): forget it. */
  discardCommit(roomId: string): Promise<void> {
    return commits.discardCommit(this.#g, roomId);
  }

  /** Applies a `room.mls.commit` in the host's order (see device-commits.ts for every outcome). */
  processCommit(roomId: string, content: MlsCommitContent): Promise<CommitResult> {
    return commits.processCommit(this.#g, roomId, content);
  }

  /** The room's next commit slot as this device knows it (the `epoch` its next commit carries). */
  async slot(roomId: string): Promise<number | null> {
    const state = await this.#g.state(roomId);
    return state === undefined ? null : this.#g.slot(roomId, state);
  }

  /**
   * The current epoch's GroupInfo (with external_pub and the ratchet tree), b64u MLSMessage:
   * what a device needs to join by external commit. For groups too large to inline it in the
   * commit event, upload it as media and put the reference in `group_info_ref`.
   */
  exportGroupInfo(roomId: string): Promise<string> {
    return joins.exportGroupInfo(this.#g, roomId);
  }

  /**
   * Joins from an `mls.welcome` (b64u MLSMessage Welcome). `slot`: the room's next commit
   * slot after the commit that added this device (the `epoch` of `MlsWelcomeContent`);
   * default the MLS epoch, which it equals unless some commit was skipped.
   */
  joinFromWelcome(roomId: string, welcomeB64: string, slot?: number): Promise<joins.JoinResult> {
    return joins.joinFromWelcome(this.#g, roomId, welcomeB64, slot);
  }

  /**
   * Prepares an external commit (RFC 9420 §12.4.3.2) from the GroupInfo the last committer
   * published: how a device joins without a Welcome, or rejoins after losing its state
   * (`resync`). Sent and confirmed like any prepared commit.
   */
  prepareExternalJoin(roomId: string, groupInfoB64: string, resync = false, slot?: number): Promise<PreparedCommit> {
    return joins.prepareExternalJoin(this.#g, roomId, groupInfoB64, resync, slot);
  }

  /** Encrypts for `room.encrypted`. The advanced ratchet is stored before the ciphertext is returned. */
  encrypt(roomId: string, plaintext: Uint8Array): Promise<EncryptedContent> {
    return messages.encrypt(this.#g, roomId, plaintext);
  }

  /** Decrypts a `room.encrypted`; a failure names its reason (see failures.ts). */
  decrypt(roomId: string, content: EncryptedContent): Promise<messages.DecryptResult> {
    return messages.decrypt(this.#g, roomId, content);
  }

  // ---- key backup ------------------------------------------------------------------------------

  /** Seals the user signing key, pinned keys and every group state with the recovery key. */
  async exportBackup(recoveryKey: Uint8Array): Promise<Uint8Array> {
    if (this.#userKey === null) throw new TypeError('this device holds no user signing key to back up');
    const groups: Record<string, string> = {};
    for (const key of await this.#store.list('group/')) {
      const roomId = key.slice('group/'.length);
      const state = await this.#g.lock(roomId, () => this.#g.state(roomId));
      if (state !== undefined) groups[roomId] = toB64u(encodeState(await this.#g.groupStore.forBackup(state, roomId)));
    }
    const payload = {
      v: 1,
      user_id: this.userId,
      user_signing_key: toB64u(this.#userKey.seed),
      pins: Object.fromEntries([...this.#pins].map(([u, k]) => [u, toB64u(k)])),
      groups,
    };
    return sealBackup(recoveryKey, this.userId, utf8(JSON.stringify(payload)));
  }

  /**
   * Opens a backup (throws BackupError `wrong_recovery_key` on a wrong key): installs the
   * user signing key, certifies this device, restores pins, and keeps the group states as
   * read-only archives that decrypt the history they cover. Returns the rooms restored.
   */
  async restoreBackup(recoveryKey: Uint8Array, sealed: Uint8Array): Promise<string[]> {
    const payload = JSON.parse(fromUtf8(openBackup(recoveryKey, this.userId, sealed))) as {
      v: number;
      user_id: string;
      user_signing_key: string;
      pins: Record<string, string>;
      groups: Record<string, string>;
    };
    if (payload.v !== 1 || payload.user_id !== this.userId) throw new TypeError('backup: not a v1 backup of this user');
    for (const [u, k] of Object.entries(payload.pins)) if (!this.#pins.has(u)) this.#pins.set(u, fromB64u(k));
    await this.importUserSigningKey(fromB64u(payload.user_signing_key));
    const rooms: string[] = [];
    for (const [roomId, b64] of Object.entries(payload.groups)) {
      const state = decodeState(fromB64u(b64), this.#g.config);
      await this.#store.put(`archive/${roomId}/${state.groupContext.epoch}`, fromB64u(b64));
      rooms.push(roomId);
    }
    return rooms;
  }
}
