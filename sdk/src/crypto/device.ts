import type { EncryptedContent, MlsCommitContent, SignedDevice, SignedDeviceList } from '@parley/schemas';
import {
  type ClientConfig,
  type ClientState,
  createApplicationMessage,
  createCommit,
  createGroup,
  createGroupInfoWithExternalPubAndRatchetTree,
  decodeMlsMessage,
  defaultCapabilities,
  defaultLifetime,
  emptyPskIndex,
  encodeMlsMessage,
  generateKeyPackageWithKey,
  joinGroup,
  joinGroupExternal,
  type KeyRetentionConfig,
  type MLSMessage,
  type Proposal,
  processPublicMessage,
} from 'ts-mls';
import { openBackup, sealBackup } from './backup.js';
import { equalBytes, fromB64u, fromUtf8, toB64u, utf8 } from './encoding.js';
import { CryptoFailureError, type DecryptFailureReason, type Failure, fail } from './failures.js';
import {
  clientConfig,
  DEFAULT_KEY_RETENTION,
  decodeState,
  encodeState,
  type Member,
  members,
  unprotectApplication,
} from './group-state.js';
import { GroupStore } from './group-store.js';
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
import { decodeKeyPackage, KeyPackagePool } from './key-packages.js';
import type { SignerKind } from './primitives.js';
import type { CryptoStore } from './store.js';
import { loadSuite, type Suite } from './suite.js';

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

/** A commit made but not yet sequenced by the room's host; apply it only once the host did. */
export interface PreparedCommit {
  roomId: string;
  /** Event content for `room.mls.commit`. */
  content: MlsCommitContent;
  /** Welcome for the added devices (b64u MLSMessage), to send to each as `mls.welcome`. */
  welcome?: string;
  /** The devices the Welcome is for. */
  welcomeFor: { userId: string; deviceId: string }[];
}

export type CommitResult =
  | { ok: true; epoch: number; added: Member[]; removed: Member[]; selfRemoved: boolean; own: boolean }
  | (Failure & { retry?: true; users?: string[] });

export type DecryptResult = { ok: true; plaintext: Uint8Array; sender: Member; epoch: number } | Failure<DecryptFailureReason>;

export type JoinResult = { ok: true; roomId: string; epoch: number } | Failure<DecryptFailureReason>;

/** Up to this many leaves the GroupInfo (≈ 350 bytes a leaf) rides inline in the commit event. */
export const INLINE_GROUP_INFO_MEMBERS = 24;

/** Most a `room.encrypted` plaintext may be, so the ciphertext fits an event (schemas MAX_MLS_MESSAGE_B64). */
export const MAX_PLAINTEXT_BYTES = 32 * 1024;

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
  readonly #config: ClientConfig;
  readonly #groupStore: GroupStore;
  readonly #signatureKeys: { signKey: Uint8Array; publicKey: Uint8Array };
  readonly #isRoomMember: (roomId: string, userId: string) => boolean;
  readonly #now: () => number;
  #stored: StoredDevice;
  #userKey: UserSigningKey | null;
  readonly #pins: Map<string, Uint8Array>;
  readonly #groups = new Map<string, ClientState>();
  readonly #pending = new Map<string, { commit: string; state: ClientState; epoch: number }>();
  readonly #locks = new Map<string, Promise<unknown>>();
  readonly #slots = new Map<string, number>();
  /** Users the Authentication Service met without a pinned key during the current operation. */
  readonly #unknownUsers = new Set<string>();

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
    this.#config = clientConfig(
      parleyAuthService(suite.primitives, this, (userId) => this.#unknownUsers.add(userId)),
      options.keyRetention ?? DEFAULT_KEY_RETENTION,
    );
    this.#groupStore = new GroupStore(options.store, this.#config, options.backupHistory === true);
    const seed = fromB64u(stored.signature_seed);
    this.#signatureKeys = { signKey: seed, publicKey: fromB64u(stored.signature_key) };
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

  // ---- groups ----------------------------------------------------------------------------------

  async #lock<T>(roomId: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.#locks.get(roomId) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const tail = run.catch(() => undefined);
    this.#locks.set(roomId, tail);
    try {
      return await run;
    } finally {
      if (this.#locks.get(roomId) === tail) this.#locks.delete(roomId);
    }
  }

  async #state(roomId: string): Promise<ClientState | undefined> {
    let state = this.#groups.get(roomId);
    if (state === undefined) {
      state = await this.#groupStore.load('group', roomId);
      if (state === undefined) return undefined;
      this.#groups.set(roomId, state);
    }
    return state;
  }

  async #save(roomId: string, state: ClientState): Promise<void> {
    await this.#groupStore.save('group', roomId, state);
    this.#groups.set(roomId, state);
  }

  async hasGroup(roomId: string): Promise<boolean> {
    return (await this.#state(roomId)) !== undefined;
  }

  /** The group's current epoch, or null when this device is not in it. */
  async epoch(roomId: string): Promise<number | null> {
    const state = await this.#state(roomId);
    return state === undefined ? null : Number(state.groupContext.epoch);
  }

  async members(roomId: string): Promise<Member[]> {
    const state = await this.#state(roomId);
    return state === undefined ? [] : members(state.ratchetTree);
  }

  /** Starts the MLS group of a room this user just made encrypted (epoch 0, only this device). */
  async createGroup(roomId: string): Promise<void> {
    this.#assertCertified();
    await this.#lock(roomId, async () => {
      if ((await this.#state(roomId)) !== undefined) throw new TypeError(`${roomId}: this device already has its group`);
      const kp = await generateKeyPackageWithKey(
        this.#credential(),
        defaultCapabilities(),
        defaultLifetime,
        [],
        this.#signatureKeys,
        this.#suite.impl,
      );
      const state = await createGroup(utf8(roomId), kp.publicPackage, kp.privatePackage, [], this.#suite.impl, this.#config);
      await this.#save(roomId, state);
    });
  }

  #assertCertified(): void {
    if (!this.certified)
      throw new TypeError('device not certified by a user signing key yet (createUserSigningKey or importUserSigningKey)');
  }

  /**
   * Prepares a commit that adds devices (by claimed KeyPackage), removes devices (all of a
   * user's when `deviceId` is omitted) and/or refreshes this device's own keys (`update`).
   * Nothing changes locally until the host sequenced it: see `confirmCommit`.
   */
  async prepareCommit(
    roomId: string,
    changes: { add?: string[]; remove?: { userId: string; deviceId?: string }[]; update?: boolean },
  ): Promise<PreparedCommit> {
    return this.#lock(roomId, async () => {
      const state = await this.#state(roomId);
      if (state === undefined) throw new CryptoFailureError('missing_welcome', `${roomId}: this device is not in the group`);
      const proposals: Proposal[] = [];
      const welcomeFor: PreparedCommit['welcomeFor'] = [];
      const current = members(state.ratchetTree);
      for (const b64 of changes.add ?? []) {
        const kp = decodeKeyPackage(b64);
        if (kp === null) throw new CryptoFailureError('corrupt', 'add: not a KeyPackage');
        const identity = members([{ nodeType: 'leaf', leaf: kp.leafNode } as never])[0];
        if (identity === undefined) throw new CryptoFailureError('not_member', 'add: KeyPackage without a Parley device credential');
        if (current.some((m) => m.userId === identity.userId && m.deviceId === identity.deviceId)) continue; // already in
        proposals.push({ proposalType: 'add', add: { keyPackage: kp } });
        welcomeFor.push({ userId: identity.userId, deviceId: identity.deviceId });
      }
      for (const r of changes.remove ?? []) {
        for (const m of current) {
          if (m.userId === r.userId && (r.deviceId === undefined || m.deviceId === r.deviceId)) {
            if (m.userId === this.userId && m.deviceId === this.deviceId)
              throw new TypeError('remove: a device cannot commit its own removal');
            proposals.push({ proposalType: 'remove', remove: { removed: m.leafIndex } });
          }
        }
      }
      if (proposals.length === 0 && changes.update !== true) throw new TypeError('prepareCommit: nothing to change');
      let result: Awaited<ReturnType<typeof createCommit>>;
      try {
        result = await createCommit(
          { state, cipherSuite: this.#suite.impl },
          { extraProposals: proposals, wireAsPublicMessage: true, ratchetTreeExtension: true },
        );
      } catch (err) {
        throw new CryptoFailureError('not_member', `commit refused locally: ${(err as Error).message}`);
      }
      const epoch = await this.#slot(roomId, state);
      const commit = toB64u(encodeMlsMessage(result.commit));
      await this.#savePending(roomId, { commit, state: result.newState, epoch });
      const content: MlsCommitContent = { epoch, commit };
      // A GroupInfo carries the whole ratchet tree: inline only while it surely fits the event
      // (schemas: 16 KiB); larger groups publish it with exportGroupInfo after confirming.
      if (members(result.newState.ratchetTree).length <= INLINE_GROUP_INFO_MEMBERS)
        content.group_info = await this.#groupInfo(result.newState);
      const prepared: PreparedCommit = { roomId, content, welcomeFor };
      if (result.welcome !== undefined) {
        prepared.welcome = toB64u(encodeMlsMessage({ version: 'mls10', wireformat: 'mls_welcome', welcome: result.welcome }));
      }
      return prepared;
    });
  }

  async #savePending(roomId: string, pending: { commit: string; state: ClientState; epoch: number }): Promise<void> {
    await this.#groupStore.save('pending', roomId, pending.state);
    await this.#store.put(`pending-commit/${roomId}`, utf8(JSON.stringify({ commit: pending.commit, epoch: pending.epoch })));
    this.#pending.set(roomId, pending);
  }

  async #loadPending(roomId: string): Promise<{ commit: string; state: ClientState; epoch: number } | undefined> {
    let pending = this.#pending.get(roomId);
    if (pending === undefined) {
      const meta = await this.#store.get(`pending-commit/${roomId}`);
      if (meta === undefined) return undefined;
      const state = await this.#groupStore.load('pending', roomId);
      if (state === undefined) return undefined;
      const m = JSON.parse(fromUtf8(meta)) as { commit: string; epoch: number };
      pending = { commit: m.commit, epoch: m.epoch, state };
      this.#pending.set(roomId, pending);
    }
    return pending;
  }

  /** The host sequenced this device's prepared commit: move to the new epoch. */
  async confirmCommit(roomId: string): Promise<number> {
    return this.#lock(roomId, async () => {
      const pending = await this.#loadPending(roomId);
      if (pending === undefined) throw new TypeError(`${roomId}: no prepared commit to confirm`);
      await this.#adoptPending(roomId, pending);
      await this.#setSlot(roomId, pending.epoch + 1);
      return Number(pending.state.groupContext.epoch);
    });
  }

  async #adoptPending(roomId: string, pending: { state: ClientState }): Promise<void> {
    await this.#save(roomId, pending.state);
    await this.#dropPending(roomId);
  }

  async #dropPending(roomId: string): Promise<void> {
    this.#pending.delete(roomId);
    await this.#store.delete(`pending-commit/${roomId}`);
    await this.#groupStore.delete('pending', roomId);
  }

  /** The host refused this device's commit (another won the epoch): forget it. */
  async discardCommit(roomId: string): Promise<void> {
    await this.#lock(roomId, () => this.#dropPending(roomId));
  }

  /**
   * Applies a `room.mls.commit` in the host's order. `content.epoch` is the room's commit
   * slot (how many commits the host sequenced before this one, valid or not), which equals
   * the MLS epoch until some commit fails to validate: the host cannot validate MLS, so a
   * bad commit still takes its slot, and every device skips it alike and goes on.
   *
   * - slot already passed: `stale_epoch` (a replay, or the loser of an epoch), nothing changes;
   * - slot ahead of this device: `unknown_epoch` (earlier commits missing), nothing changes;
   * - this device's own prepared commit: adopted;
   * - a commit that does not apply (wrong MLS epoch, undecodable, bad signature, from a
   *   non-member): skipped — its slot is used up and the failure says why;
   * - a commit naming a user whose signing key this device has not pinned yet: `not_member`
   *   with `retry: true` and the slot NOT used up — fetch their device list and call again,
   *   since another device that knows the key would apply it (skipping would fork).
   */
  async processCommit(roomId: string, content: MlsCommitContent): Promise<CommitResult> {
    return this.#lock(roomId, async () => {
      const state = await this.#state(roomId);
      if (state === undefined) {
        // The echo of this device's external join installs the group it prepared.
        const pending = await this.#loadPending(roomId);
        if (pending !== undefined && pending.commit === content?.commit && pending.epoch === content.epoch) {
          await this.#adoptPending(roomId, pending);
          await this.#setSlot(roomId, pending.epoch + 1);
          return changes([], pending.state, this, true);
        }
        return fail('missing_welcome', `${roomId}: this device is not in the group (its Welcome has not arrived)`);
      }
      if (!isEpoch(content?.epoch)) return fail('corrupt', `event epoch ${String(content?.epoch)} is not a commit slot`);
      const slot = await this.#slot(roomId, state);
      if (content.epoch < slot)
        return fail('stale_epoch', `commit for slot ${content.epoch}; the room is past it, at ${slot} (replay or a losing commit)`);
      if (content.epoch > slot)
        return fail('unknown_epoch', `commit for slot ${content.epoch}; this device is at ${slot}: earlier commits are missing`);
      const skip = async (result: Failure): Promise<CommitResult> => {
        await this.#setSlot(roomId, slot + 1);
        return result;
      };
      let msg: MLSMessage | undefined;
      try {
        msg = decodeMlsMessage(fromB64u(content.commit, 'commit'), 0)?.[0];
      } catch {
        msg = undefined;
      }
      if (msg?.wireformat !== 'mls_public_message' || msg.publicMessage.content.contentType !== 'commit') {
        return skip(fail('corrupt', 'not an MLS PublicMessage commit (skipped)'));
      }
      const pm = msg.publicMessage;
      if (!equalBytes(pm.content.groupId, utf8(roomId))) return skip(fail('corrupt', 'commit is for another group (skipped)'));
      const before = members(state.ratchetTree);
      const pending = await this.#loadPending(roomId);
      if (pending !== undefined && pending.commit === content.commit) {
        await this.#adoptPending(roomId, pending);
        await this.#setSlot(roomId, slot + 1);
        return changes(before, pending.state, this, true);
      }
      const current = state.groupContext.epoch;
      if (state.groupActiveState.kind === 'removedFromGroup') return skip(fail('not_member', 'this device was removed from the group'));
      if (pm.content.epoch !== current) {
        return skip(fail('corrupt', `commit made in MLS epoch ${pm.content.epoch}, the group is at ${current} (skipped)`));
      }
      let committer: Member | undefined;
      let newState: ClientState;
      this.#unknownUsers.clear();
      try {
        const result = await processPublicMessage(state, pm, emptyPskIndex, this.#suite.impl, (incoming) => {
          if (incoming.kind !== 'commit') return 'reject';
          committer = incoming.senderLeafIndex === undefined ? undefined : before.find((m) => m.leafIndex === incoming.senderLeafIndex);
          return 'accept';
        });
        if (result.actionTaken === 'reject') return skip(fail('corrupt', 'a proposal where a commit was expected (skipped)'));
        newState = result.newState;
      } catch (err) {
        const message = (err as Error).message ?? '';
        if (this.#unknownUsers.size > 0) {
          const users = [...this.#unknownUsers].sort();
          return {
            ...fail('not_member', `no pinned user signing key for ${users.join(', ')}: fetch their device lists and retry`),
            retry: true,
            users,
          };
        }
        if (/credential/i.test(message))
          return skip(fail('not_member', `commit names a device its user key did not sign (skipped: ${message})`));
        if (/membership|tag|signature/i.test(message))
          return skip(fail('not_member', `commit not from a member of epoch ${current} (skipped: ${message})`));
        return skip(fail('corrupt', `commit does not verify (skipped: ${message.slice(0, 120)})`));
      }
      // External commits have no member sender: the committer is the leaf they add.
      committer ??= members(newState.ratchetTree).find((m) => !before.some((b) => b.leafIndex === m.leafIndex));
      if (committer === undefined || !this.#isRoomMember(roomId, committer.userId)) {
        return skip(fail('not_member', `commit from ${committer?.userId ?? 'an unknown leaf'}, not a member of the room (skipped)`));
      }
      await this.#save(roomId, newState);
      await this.#setSlot(roomId, slot + 1);
      // A prepared commit of this device for the same slot lost the host's order.
      if (pending !== undefined) await this.#dropPending(roomId);
      return changes(before, newState, this, false);
    });
  }

  /** The room's next commit slot as this device knows it (the `epoch` its next commit carries). */
  async slot(roomId: string): Promise<number | null> {
    const state = await this.#state(roomId);
    return state === undefined ? null : this.#slot(roomId, state);
  }

  async #slot(roomId: string, state: ClientState): Promise<number> {
    let slot = this.#slots.get(roomId);
    if (slot === undefined) {
      const raw = await this.#store.get(`slot/${roomId}`);
      // No slot stored: no commit was ever skipped here, so slots and MLS epochs agree.
      slot = raw === undefined ? Number(state.groupContext.epoch) : Number(fromUtf8(raw));
      this.#slots.set(roomId, slot);
    }
    return slot;
  }

  async #setSlot(roomId: string, slot: number): Promise<void> {
    await this.#store.put(`slot/${roomId}`, utf8(String(slot)));
    this.#slots.set(roomId, slot);
  }

  async #groupInfo(state: ClientState): Promise<string> {
    const groupInfo = await createGroupInfoWithExternalPubAndRatchetTree(state, [], this.#suite.impl);
    return toB64u(encodeMlsMessage({ version: 'mls10', wireformat: 'mls_group_info', groupInfo }));
  }

  /**
   * The current epoch's GroupInfo (with external_pub and the ratchet tree), b64u MLSMessage:
   * what a device needs to join by external commit. For groups too large to inline it in the
   * commit event, upload it as media and put the reference in `group_info_ref`.
   */
  async exportGroupInfo(roomId: string): Promise<string> {
    return this.#lock(roomId, async () => {
      const state = await this.#state(roomId);
      if (state === undefined) throw new CryptoFailureError('missing_welcome', `${roomId}: this device is not in the group`);
      return this.#groupInfo(state);
    });
  }

  /**
   * Joins from an `mls.welcome` (b64u MLSMessage Welcome). `slot`: the room's next commit
   * slot after the commit that added this device (the `epoch` of `MlsWelcomeContent`);
   * default the MLS epoch, which it equals unless some commit was skipped.
   */
  async joinFromWelcome(roomId: string, welcomeB64: string, slot?: number): Promise<JoinResult> {
    return this.#lock(roomId, async () => {
      let msg: MLSMessage | undefined;
      try {
        msg = decodeMlsMessage(fromB64u(welcomeB64, 'welcome'), 0)?.[0];
      } catch {
        msg = undefined;
      }
      if (msg?.wireformat !== 'mls_welcome') return fail('corrupt', 'not an MLS Welcome');
      let found: Awaited<ReturnType<KeyPackagePool['find']>> = null;
      let ref: Uint8Array | undefined;
      for (const s of msg.welcome.secrets) {
        found = await this.keyPackages.find(s.newMember);
        if (found !== null) {
          ref = s.newMember;
          break;
        }
      }
      if (found === null || ref === undefined) {
        return fail('no_key_package', 'the Welcome names no KeyPackage this device holds (used up or lost): ask to be re-added');
      }
      let state: ClientState;
      try {
        state = await joinGroup(
          msg.welcome,
          found.publicPackage,
          found.privatePackage,
          emptyPskIndex,
          this.#suite.impl,
          undefined,
          undefined,
          this.#config,
        );
      } catch (err) {
        const message = (err as Error).message ?? '';
        if (/credential/i.test(message))
          return fail('not_member', `the group holds a device whose user key is not trusted: fetch device lists and retry (${message})`);
        return fail('corrupt', `Welcome does not verify (${message.slice(0, 120)})`);
      }
      if (!equalBytes(state.groupContext.groupId, utf8(roomId))) return fail('corrupt', 'Welcome is for another group');
      const existing = await this.#state(roomId);
      if (
        existing !== undefined &&
        existing.groupActiveState.kind === 'active' &&
        existing.groupContext.epoch >= state.groupContext.epoch
      ) {
        return { ok: true, roomId, epoch: Number(existing.groupContext.epoch) };
      }
      await this.#save(roomId, state);
      await this.#setSlot(roomId, isEpoch(slot) ? slot : Number(state.groupContext.epoch));
      await this.keyPackages.consume(ref);
      return { ok: true, roomId, epoch: Number(state.groupContext.epoch) };
    });
  }

  /**
   * Prepares an external commit (RFC 9420 §12.4.3.2) from the GroupInfo the last committer
   * published: how a device joins without a Welcome, or rejoins after losing its state
   * (`resync`). Sent and confirmed like any prepared commit.
   */
  async prepareExternalJoin(roomId: string, groupInfoB64: string, resync = false, slot?: number): Promise<PreparedCommit> {
    this.#assertCertified();
    return this.#lock(roomId, async () => {
      const msg = decodeMlsMessage(fromB64u(groupInfoB64, 'group_info'), 0)?.[0];
      if (msg?.wireformat !== 'mls_group_info') throw new CryptoFailureError('corrupt', 'not an MLS GroupInfo');
      if (!equalBytes(msg.groupInfo.groupContext.groupId, utf8(roomId)))
        throw new CryptoFailureError('corrupt', 'GroupInfo is for another group');
      const kp = await generateKeyPackageWithKey(
        this.#credential(),
        defaultCapabilities(),
        defaultLifetime,
        [],
        this.#signatureKeys,
        this.#suite.impl,
      );
      let joined: Awaited<ReturnType<typeof joinGroupExternal>>;
      try {
        joined = await joinGroupExternal(
          msg.groupInfo,
          kp.publicPackage,
          kp.privatePackage,
          resync,
          this.#suite.impl,
          undefined,
          this.#config,
        );
      } catch (err) {
        throw new CryptoFailureError('corrupt', `external join refused: ${(err as Error).message}`);
      }
      // The room's next commit slot (default: the GroupInfo's epoch, equal unless a commit was skipped).
      const epoch = isEpoch(slot) ? slot : Number(msg.groupInfo.groupContext.epoch);
      const commit = toB64u(encodeMlsMessage({ version: 'mls10', wireformat: 'mls_public_message', publicMessage: joined.publicMessage }));
      await this.#savePending(roomId, { commit, state: joined.newState, epoch });
      // Until the host sequences it, the device has no group: confirmCommit installs it.
      const content: MlsCommitContent = { epoch, commit };
      if (members(joined.newState.ratchetTree).length <= INLINE_GROUP_INFO_MEMBERS)
        content.group_info = await this.#groupInfo(joined.newState);
      return { roomId, content, welcomeFor: [] };
    });
  }

  // ---- messages --------------------------------------------------------------------------------

  /** Encrypts for `room.encrypted`. The advanced ratchet is stored before the ciphertext is returned. */
  async encrypt(roomId: string, plaintext: Uint8Array): Promise<EncryptedContent> {
    if (!(plaintext instanceof Uint8Array)) throw new TypeError('plaintext: expected a Uint8Array');
    if (plaintext.length > MAX_PLAINTEXT_BYTES)
      throw new RangeError(`plaintext: ${plaintext.length} bytes, more than ${MAX_PLAINTEXT_BYTES}`);
    return this.#lock(roomId, async () => {
      const state = await this.#state(roomId);
      if (state === undefined) throw new CryptoFailureError('missing_welcome', `${roomId}: this device is not in the group`);
      if (state.groupActiveState.kind !== 'active')
        throw new CryptoFailureError('not_member', `${roomId}: this device was removed from the group`);
      const result = await createApplicationMessage(state, plaintext, this.#suite.impl);
      await this.#save(roomId, result.newState);
      const ciphertext = toB64u(
        encodeMlsMessage({ version: 'mls10', wireformat: 'mls_private_message', privateMessage: result.privateMessage }),
      );
      return { epoch: Number(result.privateMessage.epoch), ciphertext };
    });
  }

  /** Decrypts a `room.encrypted`; a failure names its reason (see failures.ts). */
  async decrypt(roomId: string, content: EncryptedContent): Promise<DecryptResult> {
    return this.#lock(roomId, async () => {
      let msg: MLSMessage | undefined;
      try {
        msg = decodeMlsMessage(fromB64u(content.ciphertext, 'ciphertext'), 0)?.[0];
      } catch {
        msg = undefined;
      }
      if (msg?.wireformat !== 'mls_private_message') return fail('corrupt', 'not an MLS PrivateMessage');
      const pm = msg.privateMessage;
      if (!equalBytes(pm.groupId, utf8(roomId))) return fail('corrupt', 'message is for another group');
      if (!isEpoch(content.epoch) || BigInt(content.epoch) !== pm.epoch) {
        return fail('corrupt', `event says epoch ${String(content.epoch)}, the message says ${pm.epoch}`);
      }
      const state = await this.#state(roomId);
      let result: Awaited<ReturnType<typeof unprotectApplication>> | undefined;
      if (state !== undefined) {
        if (state.groupActiveState.kind === 'removedFromGroup' && pm.epoch > state.groupContext.epoch) {
          return fail('not_member', 'this device was removed from the group before this message');
        }
        result = await unprotectApplication(state, pm, this.#suite.impl);
        if (result.ok) await this.#save(roomId, result.newState);
      }
      if (result === undefined || (!result.ok && result.reason === 'unknown_epoch')) {
        const archived = await this.#decryptFromArchive(roomId, pm);
        if (archived !== null) result = archived;
      }
      if (result === undefined) return fail('missing_welcome', `${roomId}: this device is not in the group (its Welcome has not arrived)`);
      if (!result.ok) return result;
      if (!this.#isRoomMember(roomId, result.sender.userId)) {
        return fail('not_member', `sender ${result.sender.userId} is not a member of the room`);
      }
      return { ok: true, plaintext: result.plaintext, sender: result.sender, epoch: Number(pm.epoch) };
    });
  }

  /** Group states restored from a key backup decrypt the past they cover (never used to send). */
  async #decryptFromArchive(roomId: string, pm: Parameters<typeof unprotectApplication>[1]) {
    for (const key of await this.#store.list(`archive/${roomId}/`)) {
      const raw = await this.#store.get(key);
      if (raw === undefined) continue;
      const archived = decodeState(raw, this.#config);
      if (pm.epoch > archived.groupContext.epoch) continue;
      const result = await unprotectApplication(archived, pm, this.#suite.impl);
      if (result.ok) {
        await this.#store.put(key, encodeState(result.newState));
        return result;
      }
    }
    return null;
  }

  // ---- key backup ------------------------------------------------------------------------------

  /** Seals the user signing key, pinned keys and every group state with the recovery key. */
  async exportBackup(recoveryKey: Uint8Array): Promise<Uint8Array> {
    if (this.#userKey === null) throw new TypeError('this device holds no user signing key to back up');
    const groups: Record<string, string> = {};
    for (const key of await this.#store.list('group/')) {
      const roomId = key.slice('group/'.length);
      const state = await this.#lock(roomId, () => this.#state(roomId));
      if (state !== undefined) groups[roomId] = toB64u(encodeState(await this.#groupStore.forBackup(state, roomId)));
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
      const state = decodeState(fromB64u(b64), this.#config);
      await this.#store.put(`archive/${roomId}/${state.groupContext.epoch}`, fromB64u(b64));
      rooms.push(roomId);
    }
    return rooms;
  }
}

function isEpoch(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

function changes(before: Member[], after: ClientState, device: CryptoDevice, own: boolean): CommitResult {
  const now = members(after.ratchetTree);
  const key = (m: Member) => `${m.leafIndex}|${m.userId}|${m.deviceId}|${toB64u(m.signatureKey)}`;
  const beforeKeys = new Set(before.map(key));
  const afterKeys = new Set(now.map(key));
  const selfRemoved =
    after.groupActiveState.kind === 'removedFromGroup' || !now.some((m) => m.userId === device.userId && m.deviceId === device.deviceId);
  return {
    ok: true,
    epoch: Number(after.groupContext.epoch),
    added: now.filter((m) => !beforeKeys.has(key(m))),
    removed: before.filter((m) => !afterKeys.has(key(m))),
    selfRemoved,
    own,
  };
}
