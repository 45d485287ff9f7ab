import type { ClientEvent, Frame } from '@parley/schemas';
import type { AttachmentKey, DecryptFailureReason } from '@parley/sdk/crypto';
import { defineStore } from 'pinia';
import { computed, markRaw, reactive, ref, shallowReactive } from 'vue';
import { APPROVAL_TYPE, approvalEmoji, type DecryptView, decryptedEvent } from '../lib/e2e.js';
import { useRoomsStore } from './rooms.js';
import { useSessionStore } from './session.js';

export type Trust = 'verified' | 'unverified' | 'key_changed';
type DecryptResult =
  | { ok: true; content: Record<string, unknown>; sender: { userId: string; deviceId: string }; verified: boolean }
  | { ok: false; reason: DecryptFailureReason; detail?: string; retryable: boolean };
export interface E2eDevice {
  deviceId: string;
  displayName?: string;
  verified: boolean;
  current: boolean;
}
/** A device of this user asking to be approved (shown on devices holding the user key). */
export interface ApprovalRequest {
  deviceId: string;
  displayName?: string;
  /** The 7 emoji of the asking device's key, as it shows them too (missing if its key was not seen). */
  emoji?: { emoji: string; name: string }[];
}
export interface SafetyInfo {
  emoji: { emoji: string; name: string }[];
  number: string;
}

/** What the client uses of the sdk's E2eSession (the contract in docs: sdk/README "End-to-end encryption"). */
export interface E2eSessionLike {
  readonly needsRecovery: boolean;
  handleFrame(frame: Frame): Promise<void>;
  handleHistory(roomId: string, events: ClientEvent[]): Promise<void>;
  isEncrypted(roomId: string): boolean;
  enableEncryption(roomId: string): Promise<void>;
  send(roomId: string, content: Record<string, unknown>, txnId?: string): Promise<{ eventId: string }>;
  decrypt(event: ClientEvent): Promise<DecryptResult>;
  retry(roomId: string, eventId: string): Promise<void>;
  devices(userId: string): Promise<E2eDevice[]>;
  safety(userId: string): Promise<SafetyInfo>;
  markVerified(userId: string): Promise<void>;
  userTrust(userId: string): Trust;
  acceptKeyChange(userId: string): Promise<void>;
  setupRecovery(): Promise<string>;
  hasRecovery(): Promise<boolean>;
  restore(recoveryKey: string): Promise<void>;
  requestApproval(): Promise<void>;
  approveDevice(deviceId: string): Promise<void>;
  readonly device: { readonly signatureKey: Uint8Array };
  encryptFile(bytes: Uint8Array): Promise<{ ciphertext: Uint8Array; info: AttachmentKey }>;
  decryptFile(ciphertext: Uint8Array, info: AttachmentKey): Promise<Uint8Array>;
  on(event: 'decrypted', cb: (e: { roomId: string; eventId: string }) => void): () => void;
  on(event: 'trust', cb: (e: { userId: string; trust: Trust }) => void): () => void;
  on(event: 'failure', cb: (e: { roomId: string; eventId: string; reason: DecryptFailureReason }) => void): () => void;
  on(event: 'approval', cb: (e: { deviceId: string }) => void): () => void;
  close(): Promise<void>;
}
const DISMISSED_KEY = 'parley.e2e.recovery-dismissed';

/**
 * This device's end-to-end encryption: one E2eSession per signed-in user and device (its
 * state in IndexedDB), fed every stream frame and every loaded history page, in order; the
 * decrypted view of each room.encrypted event (pending, readable, or why not); trust of
 * other people's keys; and which recovery dialog is due.
 */
export const useE2eStore = defineStore('e2e', () => {
  const auth = useSessionStore();
  const rooms = useRoomsStore();
  const status = ref<'off' | 'opening' | 'ready' | 'failed'>('off');
  const error = ref<string | null>(null);
  const needsRecovery = ref(false);
  /**
   * Which recovery step is due: set up a key (first encrypted room) or restore (new device).
   * It shows as a banner that never blocks the chat; its button opens `dialog`.
   */
  const prompt = ref<'setup' | 'restore' | null>(null);
  const dialog = ref<'setup' | 'restore' | 'approve' | null>(null);
  /** Whether the account has a key backup (a new device is offered the recovery key only then). */
  const backupExists = ref<boolean | null>(null);
  /** New device: 'waiting' once it asked the user's other devices to approve it. */
  const approval = ref<'idle' | 'asking' | 'waiting'>('idle');
  /** New device: the emoji of its own key that the approving device shows too. */
  const ownEmoji = ref<{ emoji: string; name: string }[]>([]);
  /** Devices of this user asking to be approved by this one (it holds the user key). */
  const approvals = ref<ApprovalRequest[]>([]);
  /** The asking devices' keys as their requests carried them (for the emoji). */
  const requestKeys = new Map<string, string>();
  /** The person whose safety emoji are on screen. */
  const verifying = ref<string | null>(null);
  const views = shallowReactive(new Map<string, DecryptView>());
  const trust = reactive(new Map<string, Trust>());
  /** Rooms the session saw become encrypted after the room list was read. */
  const encryptedRooms = reactive(new Set<string>());
  const ready = computed(() => status.value === 'ready');

  let session: E2eSessionLike | null = null;
  let opening: Promise<E2eSessionLike | null> | null = null;
  let line: Promise<unknown> = Promise.resolve();
  let unsubscribe: Array<() => void> = [];
  /** room.encrypted events seen, so a 'decrypted' notice can re-read them. */
  const encrypted = new Map<string, ClientEvent>();

  /** Work on the session runs one piece at a time, in arrival order (frames before the decrypts that need them). */
  function inLine<T>(work: (s: E2eSessionLike) => Promise<T>): Promise<T | undefined> {
    const next = line.then(async () => {
      const s = await opening;
      return s ? work(s) : undefined;
    });
    line = next.catch(() => {});
    return next;
  }

  function open(): void {
    if (opening || !auth.session) return;
    const { user_id: userId, device_id: deviceId } = auth.session;
    status.value = 'opening';
    error.value = null;
    opening = (async () => {
      try {
        // Loaded on demand: the crypto (MLS, ciphers) is a chunk of its own.
        const { E2eSession, IndexedDbCryptoStore } = await import('@parley/sdk/crypto');
        const store = new IndexedDbCryptoStore(`parley-e2e:${userId}:${deviceId}`);
        const s: E2eSessionLike = await E2eSession.open({ client: auth.getClient(), store, userId, deviceId });
        session = markRaw(s);
        unsubscribe = [
          s.on('decrypted', (e) => {
            const ev = encrypted.get(e.eventId);
            if (ev) void inLine(() => decryptNow(ev, true));
          }),
          s.on('failure', (e) => {
            if (views.get(e.eventId)?.state !== 'ok') views.set(e.eventId, { state: 'failed', reason: e.reason, retryable: true });
          }),
          s.on('trust', (e) => {
            trust.set(e.userId, e.trust);
          }),
          s.on('approval', (e) => void noteApproval(e.deviceId)),
        ];
        needsRecovery.value = s.needsRecovery;
        status.value = 'ready';
        if (s.needsRecovery) {
          prompt.value = 'restore';
          backupExists.value = await s.hasRecovery().catch(() => null);
        } else void considerRecoverySetup();
        return s;
      } catch (err) {
        status.value = 'failed';
        error.value = err instanceof Error ? err.message : String(err);
        return null;
      }
    })();
  }

  async function close(): Promise<void> {
    const s = session;
    for (const off of unsubscribe) off();
    unsubscribe = [];
    session = null;
    opening = null;
    line = Promise.resolve();
    status.value = 'off';
    prompt.value = null;
    dialog.value = null;
    verifying.value = null;
    approval.value = 'idle';
    ownEmoji.value = [];
    approvals.value = [];
    requestKeys.clear();
    backupExists.value = null;
    views.clear();
    trust.clear();
    encryptedRooms.clear();
    encrypted.clear();
    await s?.close().catch(() => {});
  }

  function isEncrypted(roomId: string): boolean {
    return rooms.byId.get(roomId)?.encrypted === true || encryptedRooms.has(roomId) || (session?.isEncrypted(roomId) ?? false);
  }

  async function decryptNow(ev: ClientEvent, again = false): Promise<void> {
    if (!session) return;
    encrypted.set(ev.event_id, ev);
    const known = views.get(ev.event_id);
    if (known?.state === 'ok' || (known && !again)) return;
    if (!known) views.set(ev.event_id, { state: 'pending' });
    const r = await session.decrypt(ev);
    views.set(
      ev.event_id,
      r.ok
        ? { state: 'ok', content: r.content, sender: r.sender, verified: r.verified }
        : { state: 'failed', reason: r.reason, retryable: r.retryable, detail: r.detail },
    );
  }

  /** A stream frame (every kind: events, to-device Welcomes, device lists). */
  function frame(f: Frame): void {
    if (!opening) return;
    void inLine(async (s) => {
      // The key the sdk will certify is the one in the user's own latest request: keep the same one for the emoji.
      const c = f.kind === 'to_device' && f.data.type === APPROVAL_TYPE && f.data.sender === auth.userId ? f.data.content : null;
      if (c && typeof c.signature_key === 'string' && typeof c.device_id === 'string') {
        if (requestKeys.size >= 20 && !requestKeys.has(c.device_id)) requestKeys.delete(requestKeys.keys().next().value as string);
        requestKeys.set(c.device_id, c.signature_key);
      }
      await s.handleFrame(f);
      // Approved by another device (its device-list frame certified this one)?
      if (needsRecovery.value && !s.needsRecovery) certified();
      if (f.kind !== 'event') return;
      const ev = f.data.event;
      if (ev.type === 'room.encryption') encryptedRooms.add(ev.room_id);
      if (ev.type === 'room.encrypted') await decryptNow(ev);
    });
  }

  /** A history page (oldest first), as loaded by the timeline. */
  function history(roomId: string, events: ClientEvent[]): Promise<void> {
    if (!opening || events.length === 0) return Promise.resolve();
    return inLine(async (s) => {
      await s.handleHistory(roomId, events);
      for (const ev of events) if (ev.type === 'room.encrypted') await decryptNow(ev);
    }).then(() => {});
  }

  /** Decrypts one event met elsewhere (a room's preview, a reply's quote). */
  function want(ev: ClientEvent | null | undefined): void {
    if (ev?.type !== 'room.encrypted' || views.has(ev.event_id) || !opening) return;
    void inLine(() => decryptNow(ev));
  }

  /** The event as this device reads it once its decryption (queued behind the frames before it) is done. */
  async function readable(ev: ClientEvent): Promise<ClientEvent> {
    if (ev.type !== 'room.encrypted' || !opening) return ev;
    await inLine(() => decryptNow(ev)).catch(() => {});
    return decryptedEvent(ev, views.get(ev.event_id));
  }

  function need(): E2eSessionLike {
    if (!session) throw new Error(status.value === 'failed' ? `Encryption is unavailable: ${error.value}` : 'Encryption is still starting');
    return session;
  }

  /** Waits for the session (a send made while it opens). */
  async function whenReady(): Promise<E2eSessionLike> {
    await opening;
    return need();
  }

  /** Encrypts and sends one message; our own copy is readable at once. */
  async function send(roomId: string, type: string, content: Record<string, unknown>, txnId: string): Promise<string> {
    await whenReady();
    const inner = { type, ...content };
    const sent = await inLine((s) => s.send(roomId, inner, txnId));
    if (!sent) throw new Error('Encryption is unavailable on this device');
    const { eventId } = sent;
    views.set(eventId, {
      state: 'ok',
      content: inner,
      sender: { userId: auth.userId, deviceId: auth.session?.device_id ?? '' },
      verified: true,
    });
    return eventId;
  }

  async function enableEncryption(roomId: string): Promise<void> {
    const s = await whenReady();
    await s.enableEncryption(roomId);
    encryptedRooms.add(roomId);
    void considerRecoverySetup();
  }

  async function retry(roomId: string, eventId: string): Promise<void> {
    const s = need();
    views.set(eventId, { state: 'pending' });
    await s.retry(roomId, eventId);
    const ev = encrypted.get(eventId);
    if (ev) await inLine(() => decryptNow(ev, true));
  }

  function refreshTrust(userIds: Iterable<string>): void {
    if (!session) return;
    for (const u of userIds) if (u !== auth.userId) trust.set(u, session.userTrust(u));
  }

  async function markVerified(userId: string): Promise<void> {
    await need().markVerified(userId);
    trust.set(userId, 'verified');
  }

  async function acceptKeyChange(userId: string): Promise<void> {
    await need().acceptKeyChange(userId);
    trust.set(userId, need().userTrust(userId));
  }

  /** The recovery set-up is due once there is an encrypted room and no recovery key (unless put off this tab). */
  async function considerRecoverySetup(): Promise<void> {
    if (!session || prompt.value || sessionStorage.getItem(DISMISSED_KEY)) return;
    const anyEncrypted = rooms.list.some((r) => r.encrypted) || encryptedRooms.size > 0;
    if (!anyEncrypted) return;
    if (!(await session.hasRecovery())) prompt.value = 'setup';
  }

  /** "Not now": the set-up is offered again next session (Settings keeps a button). */
  function dismissPrompt(): void {
    if (prompt.value === 'setup') sessionStorage.setItem(DISMISSED_KEY, '1');
    prompt.value = null;
    dialog.value = null;
  }

  /** The recovery step is done (key saved, or restored). */
  function recoveryDone(): void {
    prompt.value = null;
    dialog.value = null;
  }

  async function restore(key: string): Promise<void> {
    await need().restore(key);
    needsRecovery.value = false;
    recoveryDone();
  }

  /** This device became certified (by the recovery key or another device's approval). */
  function certified(): void {
    needsRecovery.value = false;
    approval.value = 'idle';
    if (prompt.value === 'restore') prompt.value = null;
    if (dialog.value === 'restore' || dialog.value === 'approve') dialog.value = null;
  }

  /** New device: asks the user's other devices to approve it and waits (the device-list frame ends the wait). */
  async function requestApproval(): Promise<void> {
    const s = await whenReady();
    if (!s.needsRecovery) return certified();
    approval.value = 'asking';
    try {
      const { SAS_EMOJI, toB64u } = await import('@parley/sdk/crypto');
      ownEmoji.value = await approvalEmoji(SAS_EMOJI, auth.userId, auth.session?.device_id ?? '', toB64u(s.device.signatureKey));
      await s.requestApproval();
      approval.value = 'waiting';
    } catch (err) {
      approval.value = 'idle';
      throw err;
    }
  }

  /** Stops waiting here (a request already shown on other devices stays there until they answer it). */
  function cancelApproval(): void {
    approval.value = 'idle';
    if (dialog.value === 'approve') dialog.value = null;
  }

  async function noteApproval(deviceId: string): Promise<void> {
    const key = requestKeys.get(deviceId);
    const entry: ApprovalRequest = { deviceId };
    if (key) {
      const { SAS_EMOJI } = await import('@parley/sdk/crypto');
      entry.emoji = await approvalEmoji(SAS_EMOJI, auth.userId, deviceId, key).catch(() => undefined);
    }
    const name = await auth
      .getClient()
      .listDevices()
      .then((l) => l.devices.find((d) => d.device_id === deviceId)?.display_name ?? undefined)
      .catch(() => undefined);
    if (name) entry.displayName = name;
    approvals.value = [...approvals.value.filter((a) => a.deviceId !== deviceId), entry];
  }

  /** Certifies a device that asked (the person confirmed it is theirs); the members then add it to encrypted rooms. */
  async function approveDevice(deviceId: string): Promise<void> {
    await inLine((s) => s.approveDevice(deviceId));
    approvals.value = approvals.value.filter((a) => a.deviceId !== deviceId);
  }

  /** Not approved: the request goes from this device's list (the asking device stays unconfirmed). */
  function rejectDevice(deviceId: string): void {
    approvals.value = approvals.value.filter((a) => a.deviceId !== deviceId);
  }

  return {
    status,
    error,
    ready,
    needsRecovery,
    prompt,
    dialog,
    verifying,
    views,
    trust,
    encryptedRooms,
    open,
    close,
    isEncrypted,
    frame,
    history,
    want,
    readable,
    send,
    enableEncryption,
    retry,
    refreshTrust,
    markVerified,
    acceptKeyChange,
    considerRecoverySetup,
    dismissPrompt,
    recoveryDone,
    restore,
    backupExists,
    approval,
    ownEmoji,
    approvals,
    requestApproval,
    cancelApproval,
    approveDevice,
    rejectDevice,
    devices: (userId: string) => need().devices(userId),
    safety: (userId: string) => need().safety(userId),
    setupRecovery: () => need().setupRecovery(),
    hasRecovery: () => need().hasRecovery(),
    encryptFile: (bytes: Uint8Array) => need().encryptFile(bytes),
    decryptFile: (bytes: Uint8Array, info: AttachmentKey) => need().decryptFile(bytes, info),
  };
});
