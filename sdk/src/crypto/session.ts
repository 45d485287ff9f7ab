import type { ClientEvent, EncryptedContent, Frame, MlsCommitContent, MlsWelcomeContent } from '@parley/schemas';
import { MAX_WELCOME_B64 } from '@parley/schemas';
import type { ParleyClient } from '../client.js';
import { E2eApi } from '../e2e.js';
import { Emitter } from '../emitter.js';
import { newTxnId, RoomsApi } from '../rooms.js';
import { type AttachmentKey, decryptAttachment, encryptAttachment } from './attachments.js';
import { CryptoDevice, type CryptoDeviceOptions } from './device.js';
import { fromUtf8, utf8 } from './encoding.js';
import { CryptoFailureError, type DecryptFailureReason } from './failures.js';
import { safetyEmoji, safetyNumber } from './safety.js';
import { GroupDriver } from './session-groups.js';
import { DEVICE_APPROVAL_TYPE, OwnKeys } from './session-keys.js';
import { type EnvelopeOutcome, SessionMailbox } from './session-mailbox.js';
import { TrustBook, type UserTrust } from './session-trust.js';
import type { CryptoStore } from './store.js';

export type RoomEvent = ClientEvent;
export type { UserTrust } from './session-trust.js';

export interface E2eSessionOptions {
  /** Signed-in client (access token). */
  client: ParleyClient;
  /** IndexedDbCryptoStore in browsers, FileCryptoStore in Node. */
  store: CryptoStore;
  userId: string;
  deviceId: string;
  /** An already opened device (its `isRoomMember` is then the app's); default: opened from `store`. */
  device?: CryptoDevice;
  /** Non-committers commit a pending membership change after rank × this many ms (default 3000). */
  fallbackMs?: number;
  /** A joined device waits this long for its Welcome before joining by external commit (default 10000). */
  welcomeWaitMs?: number;
  /** Keep decrypted contents in the store so reloads show them (default true; keys are gone once read). */
  keepDecrypted?: boolean;
  /** Diagnostics (never plaintext or keys). */
  log?: (message: string) => void;
  /**
   * This device's mailbox queue (docs/protocol.md "Mailbox delivery of Welcomes"): created once
   * on the mailbox server at `url` (default: the homeserver) when it offers mailboxes, and
   * published in the signed device list. `false`: none.
   */
  mailbox?: { url?: string } | false;
  /** How often the queue is read while the session is open (default 60000 ms; it is also read on open and on `retry`). */
  mailboxPollMs?: number;
  /** Passed on when the session opens the device itself. */
  deviceOptions?: Partial<Pick<CryptoDeviceOptions, 'signer' | 'keyRetention' | 'now'>>;
}

export type DecryptedEvent =
  | { ok: true; content: Record<string, unknown>; sender: { userId: string; deviceId: string }; verified: boolean }
  | { ok: false; reason: DecryptFailureReason; detail?: string; retryable: boolean };

export interface E2eSessionEvents {
  decrypted: { roomId: string; eventId: string };
  trust: { userId: string; trust: UserTrust };
  failure: { roomId: string; eventId: string; reason: DecryptFailureReason };
  /** Another device of this user asks to be approved (`approveDevice` once the user confirms). */
  approval: { deviceId: string };
}

/** The room events the session acts on; others cost nothing. */
const E2E_EVENT_TYPES: ReadonlySet<string> = new Set(['room.member', 'room.encryption', 'room.mls.commit']);
const KEY_PACKAGES_LOW_TYPE = 'parley.key_packages_low';
const MLS_WELCOME = 'mls.welcome';
/** Failed events kept for a retry when the group moves on. */
const MAX_PENDING = 2000;
const MAX_CACHED = 5000;

/**
 * The app-level end-to-end session of one device (docs/protocol.md, sdk README "End-to-end
 * encryption"): feed it every stream frame and every page of history; it keeps the device's
 * MLS groups in step with the rooms (commits in the host's order, Welcomes, external joins,
 * the commit rule on membership and device-list changes), encrypts, decrypts with typed
 * failures, tracks trust per user and keeps the key backup current.
 */
export class E2eSession extends Emitter<E2eSessionEvents> {
  readonly userId: string;
  readonly deviceId: string;
  readonly e2e: E2eApi;
  readonly rooms: RoomsApi;
  #device: CryptoDevice;
  readonly #ownsDevice: boolean;
  readonly #options: E2eSessionOptions;
  readonly #store: CryptoStore;
  readonly #trust: TrustBook;
  readonly #keys: OwnKeys;
  readonly #groups: GroupDriver;
  readonly #cache = new Map<string, DecryptedEvent>();
  readonly #pending = new Map<string, RoomEvent>();
  readonly #log: (message: string) => void;
  readonly #mailbox: SessionMailbox;
  #mailboxTimer: ReturnType<typeof setInterval> | undefined;
  #needsRecovery = false;
  #closed = false;

  private constructor(options: E2eSessionOptions, device: CryptoDevice, ownsDevice: boolean) {
    super();
    this.#options = options;
    this.userId = options.userId;
    this.deviceId = options.deviceId;
    this.#device = device;
    this.#ownsDevice = ownsDevice;
    this.#store = options.store;
    this.#log = options.log ?? (() => undefined);
    this.e2e = new E2eApi(options.client);
    this.rooms = new RoomsApi(options.client);
    this.#trust = new TrustBook(
      () => this.#device,
      options.store,
      this.e2e,
      (userId, trust) => this.emit('trust', { userId, trust }),
    );
    const mailbox = options.mailbox;
    this.#mailbox = new SessionMailbox(options.store, {
      url: mailbox === false ? false : (mailbox?.url ?? options.client.baseUrl),
      log: this.#log,
    });
    this.#keys = new OwnKeys(
      () => this.#device,
      options.store,
      this.e2e,
      this.#trust,
      () => this.#mailbox.published,
    );
    this.#groups = new GroupDriver(
      { userId: this.userId, deviceId: this.deviceId },
      () => this.#device,
      this.e2e,
      this.rooms,
      this.#trust,
      { fallbackMs: options.fallbackMs ?? 3000, welcomeWaitMs: options.welcomeWaitMs ?? 10_000 },
      {
        changed: (roomId) => this.#retryPending(roomId),
        committed: async () => {
          await this.#keys.uploadBackup().catch((err) => this.#log(`backup after commit: ${(err as Error).message}`));
        },
        deposit: (devices, content) => this.#deposit(devices, content),
        log: this.#log,
      },
    );
  }

  /**
   * Opens the device; creates the user signing key if the user has none anywhere (no device
   * list, no backup); publishes the signed device list and uploads key packages.
   */
  static async open(options: E2eSessionOptions): Promise<E2eSession> {
    if (options?.client === undefined) throw new TypeError('client: expected a signed-in ParleyClient');
    let session: E2eSession | undefined;
    let device = options.device;
    const owns = device === undefined;
    if (device === undefined) {
      device = await CryptoDevice.open({
        ...options.deviceOptions,
        store: options.store,
        userId: options.userId,
        deviceId: options.deviceId,
        isRoomMember: (roomId, userId) => (session === undefined ? true : session.#groups.isMember(roomId, userId)),
        backupHistory: (await options.store.get('session/recovery-key')) !== undefined,
      });
    }
    session = new E2eSession(options, device, owns);
    await session.#trust.load();
    await session.#mailbox.setup();
    session.#needsRecovery = await session.#keys.bootstrap();
    // Approved by another device while this one was away?
    if (session.#needsRecovery && (await session.#keys.checkApproval().catch(() => false))) session.#needsRecovery = false;
    // Rooms this device holds a group for are encrypted: know them before their first frame.
    for (const key of await options.store.list('group/'))
      void session.#groups.ensureRoom(key.slice('group/'.length)).catch(() => undefined);
    // What waited in the mailbox while away, then every minute (bounded reads, one at a time).
    void session.checkMailbox();
    const every = Math.max(1000, options.mailboxPollMs ?? 60_000);
    session.#mailboxTimer = setInterval(() => void session.checkMailbox(), every);
    (session.#mailboxTimer as { unref?: () => void }).unref?.();
    return session;
  }

  /** True when the user has a key elsewhere and this device is not certified yet: ask for the recovery key. */
  get needsRecovery(): boolean {
    return this.#needsRecovery;
  }

  /** The CryptoDevice underneath (for tests and advanced use). */
  get device(): CryptoDevice {
    return this.#device;
  }

  // ---- input --------------------------------------------------------------------------------------

  /** Feed every stream frame (ParleyStream / SyncPoller 'frame' events), in order. */
  async handleFrame(frame: Frame): Promise<void> {
    if (this.#closed) return;
    if (frame.kind === 'event') {
      await this.#handleEvent(frame.data.event);
    } else if (frame.kind === 'to_device') {
      const { type, sender, content } = frame.data;
      if (type === MLS_WELCOME) await this.#welcome(sender, content as unknown as MlsWelcomeContent, 'to-device');
      else if (type === KEY_PACKAGES_LOW_TYPE && sender === this.userId) await this.#keys.refillKeyPackages();
      else if (type === DEVICE_APPROVAL_TYPE && this.#keys.noteRequest(sender, content)) {
        this.emit('approval', { deviceId: String(content.device_id) });
      }
    } else if (frame.kind === 'device_list') {
      const userId = frame.data.user_id;
      if (userId === this.userId && this.#needsRecovery && (await this.#keys.checkApproval())) await this.#certified();
      await this.#trust.lists([userId], true);
      if (userId === this.userId && this.#device.userSigningKey !== null) await this.#keys.publishDeviceList();
      for (const [roomId, room] of this.#groups.rooms) if (room.membership.has(userId)) this.#groups.schedule(roomId);
    }
  }

  /** Events loaded by history pagination (either direction): commits met there are applied in slot order. */
  async handleHistory(roomId: string, events: RoomEvent[]): Promise<void> {
    const commits = events
      .filter((e) => e.type === 'room.mls.commit' && e.room_id === roomId)
      .sort((a, b) => Number(a.content.epoch) - Number(b.content.epoch));
    const room = await this.#groups.ensureRoom(roomId);
    if (events.some((e) => e.type === 'room.encryption')) room.encrypted = true;
    if (commits.length === 0) return;
    await this.#groups.run(roomId, async () => {
      let moved = false;
      for (const e of commits) {
        const r = await this.#groups.applyCommit(roomId, e.content as unknown as MlsCommitContent);
        if (r.ok) moved = true;
      }
      if (moved) await this.#retryPending(roomId);
    });
  }

  async #handleEvent(e: RoomEvent): Promise<void> {
    if (!E2E_EVENT_TYPES.has(e.type)) return;
    const roomId = e.room_id;
    const known = this.#groups.rooms.get(roomId);
    const room = known ?? (await this.#groups.ensureRoom(roomId));
    if (known !== undefined && typeof e.state_key === 'string') this.#groups.applyState(room, e);
    if (e.type === 'room.member') this.#groups.markStale(roomId);
    if (e.type === 'room.mls.commit') {
      await this.#groups.run(roomId, async () => {
        const r = await this.#groups.applyCommit(roomId, e.content as unknown as MlsCommitContent);
        if (r.ok) await this.#retryPending(roomId);
        else if (r.reason === 'unknown_epoch') await this.#groups.tryCatchUp(roomId);
      });
      this.#groups.schedule(roomId);
    } else if (e.type === 'room.member' || e.type === 'room.encryption') {
      this.#groups.schedule(roomId);
    }
  }

  // ---- rooms --------------------------------------------------------------------------------------

  /** Whether the room is encrypted (room.encryption seen in its state). */
  isEncrypted(roomId: string): boolean {
    const room = this.#groups.rooms.get(roomId);
    // Not met yet: load it in the background (a `loadRoom` awaits the answer).
    if (room === undefined && !this.#closed) void this.#groups.ensureRoom(roomId).catch(() => undefined);
    return room?.encrypted === true;
  }

  /** Loads the room's state into the session (done lazily otherwise); returns whether it is encrypted. */
  async loadRoom(roomId: string): Promise<boolean> {
    return (await this.#groups.ensureRoom(roomId)).encrypted;
  }

  /** Sends `room.encryption` (unless set), starts the group on this device when it is the encryptor's, adds the members. */
  async enableEncryption(roomId: string): Promise<void> {
    this.#assertReady();
    const room = await this.#groups.ensureRoom(roomId);
    if (!room.encrypted) {
      await this.e2e.enableEncryption(roomId);
      room.encrypted = true;
      room.encryptedBy ??= this.userId;
    }
    await this.#groups.run(roomId, async () => {
      if (!(await this.#device.hasGroup(roomId)) && room.encryptedBy === this.userId) {
        if ((await this.#groups.latestGroupInfo(roomId)) === null) await this.#device.createGroup(roomId);
      }
      await this.#groups.reconcile(roomId, true);
    });
  }

  /** Encrypts `content` (UTF-8 JSON) and sends it as room.encrypted; runs pending membership commits first. */
  async send(roomId: string, content: Record<string, unknown>, txnId: string = newTxnId()): Promise<{ eventId: string }> {
    this.#assertReady();
    if (typeof content !== 'object' || content === null) throw new TypeError('content: expected an object');
    return this.#groups.run(roomId, async () => {
      const room = await this.#groups.ensureRoom(roomId);
      if (room.membership.get(this.userId) !== 'join') throw new CryptoFailureError('not_member', `${roomId}: not joined`);
      await this.#groups.catchUp(roomId);
      // Membership as the server has it now: a kick a moment ago must not be able to read this.
      await this.#groups.reconcile(roomId, true, true);
      const encrypted = await this.#device.encrypt(roomId, utf8(JSON.stringify(content)));
      const sent = await this.e2e.sendEncrypted(roomId, encrypted, txnId);
      await this.#remember(sent.event_id, {
        ok: true,
        content,
        sender: { userId: this.userId, deviceId: this.deviceId },
        verified: true,
      });
      return { eventId: sent.event_id };
    });
  }

  /** Decrypted view of a room.encrypted event; cached by event ID; never throws for crypto failures. */
  async decrypt(event: RoomEvent): Promise<DecryptedEvent> {
    const cached = await this.#recall(event.event_id);
    if (cached !== undefined) return cached;
    if (event.type !== 'room.encrypted')
      return { ok: false, reason: 'corrupt', detail: `not room.encrypted: ${event.type}`, retryable: false };
    const roomId = event.room_id;
    await this.#groups.ensureRoom(roomId);
    return this.#groups.run(roomId, async () => {
      let result = await this.#decryptOnce(event);
      if (!result.ok && result.reason === 'unknown_epoch' && result.retryable) {
        await this.#groups.tryCatchUp(roomId);
        result = await this.#decryptOnce(event);
      }
      if (!result.ok) {
        if (result.retryable) {
          if (this.#pending.size >= MAX_PENDING) this.#pending.delete(this.#pending.keys().next().value as string);
          this.#pending.set(event.event_id, event);
        }
        this.emit('failure', { roomId, eventId: event.event_id, reason: result.reason });
      }
      return result;
    });
  }

  async #decryptOnce(event: RoomEvent): Promise<DecryptedEvent> {
    const cached = await this.#recall(event.event_id);
    if (cached !== undefined) return cached;
    const r = await this.#device.decrypt(event.room_id, event.content as unknown as EncryptedContent);
    if (!r.ok) {
      let retryable = r.reason === 'missing_welcome' || r.reason === 'no_key_package';
      if (r.reason === 'unknown_epoch') {
        // Newer than this device's epoch: commits to apply first. Older: gone (only a backup helps).
        const epoch = await this.#device.epoch(event.room_id);
        retryable = epoch === null || Number((event.content as { epoch?: unknown }).epoch) > epoch;
      }
      return { ok: false, reason: r.reason, detail: r.detail, retryable };
    }
    if (r.sender.userId !== event.sender) {
      return { ok: false, reason: 'corrupt', detail: `event from ${event.sender}, MLS sender ${r.sender.userId}`, retryable: false };
    }
    let content: unknown;
    try {
      content = JSON.parse(fromUtf8(r.plaintext));
    } catch {
      content = undefined;
    }
    if (typeof content !== 'object' || content === null || Array.isArray(content)) {
      return { ok: false, reason: 'corrupt', detail: 'plaintext is not a JSON object', retryable: false };
    }
    const out: DecryptedEvent = {
      ok: true,
      content: content as Record<string, unknown>,
      sender: { userId: r.sender.userId, deviceId: r.sender.deviceId },
      verified: this.#trust.trust(r.sender.userId) === 'verified',
    };
    await this.#remember(event.event_id, out);
    this.#pending.delete(event.event_id);
    return out;
  }

  /** Refreshes this device's own keys in the room's group by a commit (retried until sequenced). */
  async updateKeys(roomId: string): Promise<void> {
    this.#assertReady();
    await this.#groups.run(roomId, async () => {
      await this.#groups.catchUp(roomId);
      await this.#groups.updateKeys(roomId);
    });
  }

  /** Re-runs catch-up for the room (missing commits; external join when no Welcome came), then re-decrypts. */
  async retry(roomId: string, eventId: string): Promise<void> {
    this.#assertReady();
    await this.checkMailbox();
    await this.#groups.run(roomId, async () => {
      await this.#groups.tryCatchUp(roomId);
      const room = await this.#groups.ensureRoom(roomId);
      if (room.encrypted && room.membership.get(this.userId) === 'join' && (await this.#device.slot(roomId)) === null) {
        await this.#groups.externalJoin(roomId);
      }
    });
    const event = this.#pending.get(eventId);
    if (event !== undefined) {
      const r = await this.decrypt(event);
      if (r.ok) this.emit('decrypted', { roomId, eventId });
    }
  }

  // ---- Welcomes by either path, and the mailbox ---------------------------------------------------

  /** Applies a Welcome once, whichever path (to-device, mailbox) brings it first. */
  async #welcome(sender: string, content: MlsWelcomeContent, via: 'to-device' | 'mailbox'): Promise<EnvelopeOutcome> {
    if (typeof content?.welcome !== 'string' || content.welcome.length > MAX_WELCOME_B64) return 'done';
    if (typeof content.room_id !== 'string' || content.room_id.length > 255 || !Number.isSafeInteger(content.epoch)) return 'done';
    if (await this.#mailbox.seen(content.welcome)) {
      this.#log(`Welcome for ${content.room_id} (${via}): applied already`);
      return 'done';
    }
    const r = await this.#groups.handleWelcome(sender, content);
    if (r === 'joined') {
      await this.#mailbox.markSeen(content.welcome);
      this.#log(`Welcome for ${content.room_id} (${via}): applied`);
    }
    return r === 'unavailable' ? 'later' : 'done';
  }

  /**
   * Reads this device's mailbox queue now and applies the Welcomes found there (each once);
   * acknowledges what it handled, leaves what cannot be checked yet. Returns how many it handled.
   */
  async checkMailbox(): Promise<number> {
    if (this.#closed) return 0;
    return this.#mailbox.poll(async (envelope) =>
      envelope.type === MLS_WELCOME ? this.#welcome(envelope.sender, envelope.content as unknown as MlsWelcomeContent, 'mailbox') : 'done',
    );
  }

  /** Deposit-always: a Welcome for a device of another server also goes to the mailbox its signed list names. */
  async #deposit(devices: { userId: string; deviceId: string }[], content: MlsWelcomeContent): Promise<void> {
    const serverOf = (userId: string) => userId.slice(userId.indexOf(':') + 1);
    for (const d of devices) {
      if (serverOf(d.userId) === serverOf(this.userId)) continue;
      const list = this.#trust.cached(d.userId) ?? (await this.#trust.lists([d.userId])).get(d.userId);
      const target = list?.mailboxes.get(d.deviceId);
      if (target === undefined) continue;
      const ok = await this.#mailbox.deposit(target, { type: MLS_WELCOME, sender: this.userId, content: { ...content } });
      this.#log(`Welcome for ${content.room_id} deposited in a mailbox: ${ok}`);
    }
  }

  async #retryPending(roomId: string): Promise<void> {
    for (const [eventId, event] of [...this.#pending]) {
      if (event.room_id !== roomId) continue;
      const r = await this.#decryptOnce(event);
      if (r.ok) this.emit('decrypted', { roomId, eventId });
    }
  }

  async #remember(eventId: string, result: DecryptedEvent): Promise<void> {
    if (this.#cache.size >= MAX_CACHED) this.#cache.delete(this.#cache.keys().next().value as string);
    this.#cache.set(eventId, result);
    if (this.#options.keepDecrypted !== false && result.ok) {
      await this.#store.put(`plain/${eventId}`, utf8(JSON.stringify({ c: result.content, s: result.sender })));
    }
  }

  async #recall(eventId: string): Promise<DecryptedEvent | undefined> {
    const hit = this.#cache.get(eventId);
    if (hit !== undefined) return hit.ok ? { ...hit, verified: this.#trust.trust(hit.sender.userId) === 'verified' } : hit;
    if (this.#options.keepDecrypted === false) return undefined;
    const raw = await this.#store.get(`plain/${eventId}`);
    if (raw === undefined) return undefined;
    const { c, s } = JSON.parse(fromUtf8(raw)) as { c: Record<string, unknown>; s: { userId: string; deviceId: string } };
    const out: DecryptedEvent = { ok: true, content: c, sender: s, verified: this.#trust.trust(s.userId) === 'verified' };
    this.#cache.set(eventId, out);
    return out;
  }

  // ---- trust --------------------------------------------------------------------------------------

  /** A user's devices with trust state (the signed list, plus signed-in devices it does not vouch for). */
  async devices(userId: string): Promise<{ deviceId: string; displayName?: string; verified: boolean; current: boolean }[]> {
    const list = (await this.#trust.lists([userId], true)).get(userId);
    if (list === undefined) return [];
    const userVerified = this.#trust.trust(userId) === 'verified';
    const ids = [...new Set([...list.listed.filter((d) => list.signedIn.includes(d)), ...list.signedIn])];
    return ids.map((deviceId) => ({
      deviceId,
      verified: userVerified && list.listed.includes(deviceId),
      current: userId === this.userId && deviceId === this.deviceId,
    }));
  }

  /** Safety number and emoji of this user's key and `userId`'s pinned key. */
  async safety(userId: string): Promise<{ emoji: { emoji: string; name: string }[]; number: string }> {
    if (this.#device.userKey(userId) === undefined) await this.#trust.lists([userId], true);
    const theirs = this.#device.userKey(userId);
    const mine = this.#device.userSigningKey;
    if (theirs === undefined || mine === null) throw new TypeError(`${userId}: no user signing key known yet`);
    const a = { userId: this.userId, userSigningKey: mine };
    const b = { userId, userSigningKey: theirs };
    return { emoji: safetyEmoji(a, b), number: safetyNumber(a, b) };
  }

  async markVerified(userId: string): Promise<void> {
    await this.#trust.markVerified(userId);
  }

  userTrust(userId: string): UserTrust {
    return this.#trust.trust(userId);
  }

  async acceptKeyChange(userId: string): Promise<void> {
    await this.#trust.acceptKeyChange(userId);
    for (const [roomId, room] of this.#groups.rooms) if (room.membership.has(userId)) this.#groups.schedule(roomId);
  }

  // ---- recovery -----------------------------------------------------------------------------------

  /** Creates a recovery key, turns on history backup, uploads the first backup; returns the key (show
   * once). Only epochs begun with history backup on are kept whole, so each group re-keys now. */
  async setupRecovery(): Promise<string> {
    this.#assertReady();
    const formatted = await this.#keys.setupRecovery();
    await this.#reopen();
    for (const key of await this.#store.list('group/')) {
      const roomId = key.slice('group/'.length);
      await this.updateKeys(roomId).catch((err) => this.#log(`key update after recovery set-up in ${roomId}: ${(err as Error).message}`));
    }
    await this.#keys.uploadBackup();
    return formatted;
  }

  async hasRecovery(): Promise<boolean> {
    return (await this.e2e.backup()) !== null;
  }

  /** Uploads a fresh backup now (done after every commit of this device when recovery is set up). */
  async backupNow(): Promise<boolean> {
    return this.#keys.uploadBackup();
  }

  /** New device: restores from the server backup; throws BackupError('wrong_recovery_key') on a wrong key. */
  async restore(recoveryKey: string): Promise<void> {
    const rooms = await this.#keys.restore(recoveryKey);
    this.#needsRecovery = false;
    await this.#reopen();
    for (const roomId of rooms) {
      await this.#groups.ensureRoom(roomId);
      this.#groups.schedule(roomId);
    }
    for (const roomId of this.#groups.rooms.keys()) this.#groups.schedule(roomId);
  }

  /**
   * Without the recovery key: asks the user's other devices to approve this one. Once one does
   * (`approveDevice` there), the device-list frame certifies this device (`needsRecovery` false).
   */
  async requestApproval(): Promise<void> {
    await this.#keys.requestApproval();
  }

  /** Devices of this user waiting for approval (see the `approval` event). */
  approvalRequests(): string[] {
    return [...this.#keys.requests.keys()];
  }

  /** Certifies a device of this user that asked (after the user confirmed it is theirs) and publishes it. */
  async approveDevice(deviceId: string): Promise<void> {
    this.#assertReady();
    await this.#keys.approveDevice(deviceId);
  }

  async #certified(): Promise<void> {
    this.#needsRecovery = false;
    for (const roomId of this.#groups.rooms.keys()) this.#groups.schedule(roomId);
  }

  async #reopen(): Promise<void> {
    if (!this.#ownsDevice) return;
    this.#device = await CryptoDevice.open({
      ...this.#options.deviceOptions,
      store: this.#store,
      userId: this.userId,
      deviceId: this.deviceId,
      isRoomMember: (roomId, userId) => this.#groups.isMember(roomId, userId),
      backupHistory: (await this.#keys.recoveryKey()) !== undefined,
    });
  }

  // ---- attachments --------------------------------------------------------------------------------

  async encryptFile(bytes: Uint8Array): Promise<{ ciphertext: Uint8Array; info: AttachmentKey }> {
    return encryptAttachment(bytes);
  }

  async decryptFile(ciphertext: Uint8Array, info: AttachmentKey): Promise<Uint8Array> {
    return decryptAttachment(ciphertext, info);
  }

  #assertReady(): void {
    if (this.#closed) throw new TypeError('E2eSession: closed');
    if (this.#needsRecovery) throw new TypeError('E2eSession: this device needs the recovery key first (restore)');
  }

  /** Stops timers and waits for queued work to finish, so a session opened next on the store is alone on it. */
  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#mailboxTimer);
    this.#groups.close();
    await this.#mailbox.idle();
    await this.#groups.idle();
  }
}
