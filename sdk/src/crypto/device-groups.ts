import {
  type ClientConfig,
  type ClientState,
  type Credential,
  createGroupInfoWithExternalPubAndRatchetTree,
  defaultCapabilities,
  defaultLifetime,
  encodeMlsMessage,
  generateKeyPackageWithKey,
} from 'ts-mls';
import { fromUtf8, toB64u, utf8 } from './encoding.js';
import type { Failure } from './failures.js';
import { type Member, members } from './group-state.js';
import { GroupStore } from './group-store.js';
import type { KeyPackagePool } from './key-packages.js';
import type { CryptoStore } from './store.js';
import type { Suite } from './suite.js';

/** A commit made but not yet sequenced by the room's host; apply it only once the host did. */
export interface PreparedCommit {
  roomId: string;
  /** Event content for `room.mls.commit`. */
  content: import('@parley/schemas').MlsCommitContent;
  /** Welcome for the added devices (b64u MLSMessage), to send to each as `mls.welcome`. */
  welcome?: string;
  /** The devices the Welcome is for. */
  welcomeFor: { userId: string; deviceId: string }[];
}

export type CommitResult =
  | { ok: true; epoch: number; added: Member[]; removed: Member[]; selfRemoved: boolean; own: boolean }
  | (Failure & { retry?: true; users?: string[] });

/** Up to this many leaves the GroupInfo (≈ 350 bytes a leaf) rides inline in the commit event. */
export const INLINE_GROUP_INFO_MEMBERS = 24;

export interface PendingCommit {
  commit: string;
  state: ClientState;
  epoch: number;
}

/**
 * What the group operations of a CryptoDevice (commits, joins, messages) share: the device's
 * MLS identity and the per-room group states, pending commits, commit slots and locks, each
 * written to the store before the call that changed it resolves.
 */
export class DeviceGroups {
  readonly groupStore: GroupStore;
  readonly #groups = new Map<string, ClientState>();
  readonly #pending = new Map<string, PendingCommit>();
  readonly #locks = new Map<string, Promise<unknown>>();
  readonly #slots = new Map<string, number>();
  /** Users the Authentication Service met without a pinned key during the current operation. */
  readonly unknownUsers = new Set<string>();

  constructor(
    readonly store: CryptoStore,
    readonly suite: Suite,
    readonly config: ClientConfig,
    backupHistory: boolean,
    readonly me: {
      userId: string;
      deviceId: string;
      credential: () => Credential;
      signatureKeys: { signKey: Uint8Array; publicKey: Uint8Array };
      keyPackages: () => KeyPackagePool;
      isRoomMember: (roomId: string, userId: string) => boolean;
      certified: () => boolean;
    },
  ) {
    this.groupStore = new GroupStore(store, config, backupHistory);
  }

  async lock<T>(roomId: string, fn: () => Promise<T>): Promise<T> {
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

  async state(roomId: string): Promise<ClientState | undefined> {
    let state = this.#groups.get(roomId);
    if (state === undefined) {
      state = await this.groupStore.load('group', roomId);
      if (state === undefined) return undefined;
      this.#groups.set(roomId, state);
    }
    return state;
  }

  async save(roomId: string, state: ClientState): Promise<void> {
    await this.groupStore.save('group', roomId, state);
    this.#groups.set(roomId, state);
  }

  /** A fresh KeyPackage of this device, for a group it starts or joins by itself. */
  ownKeyPackage() {
    return generateKeyPackageWithKey(
      this.me.credential(),
      defaultCapabilities(),
      defaultLifetime,
      [],
      this.me.signatureKeys,
      this.suite.impl,
    );
  }

  assertCertified(): void {
    if (!this.me.certified())
      throw new TypeError('device not certified by a user signing key yet (createUserSigningKey or importUserSigningKey)');
  }

  async savePending(roomId: string, pending: PendingCommit): Promise<void> {
    await this.groupStore.save('pending', roomId, pending.state);
    await this.store.put(`pending-commit/${roomId}`, utf8(JSON.stringify({ commit: pending.commit, epoch: pending.epoch })));
    this.#pending.set(roomId, pending);
  }

  async loadPending(roomId: string): Promise<PendingCommit | undefined> {
    let pending = this.#pending.get(roomId);
    if (pending === undefined) {
      const meta = await this.store.get(`pending-commit/${roomId}`);
      if (meta === undefined) return undefined;
      const state = await this.groupStore.load('pending', roomId);
      if (state === undefined) return undefined;
      const m = JSON.parse(fromUtf8(meta)) as { commit: string; epoch: number };
      pending = { commit: m.commit, epoch: m.epoch, state };
      this.#pending.set(roomId, pending);
    }
    return pending;
  }

  async adoptPending(roomId: string, pending: { state: ClientState }): Promise<void> {
    await this.save(roomId, pending.state);
    await this.dropPending(roomId);
  }

  async dropPending(roomId: string): Promise<void> {
    this.#pending.delete(roomId);
    await this.store.delete(`pending-commit/${roomId}`);
    await this.groupStore.delete('pending', roomId);
  }

  async slot(roomId: string, state: ClientState): Promise<number> {
    let slot = this.#slots.get(roomId);
    if (slot === undefined) {
      const raw = await this.store.get(`slot/${roomId}`);
      // No slot stored: no commit was ever skipped here, so slots and MLS epochs agree.
      slot = raw === undefined ? Number(state.groupContext.epoch) : Number(fromUtf8(raw));
      this.#slots.set(roomId, slot);
    }
    return slot;
  }

  async setSlot(roomId: string, slot: number): Promise<void> {
    await this.store.put(`slot/${roomId}`, utf8(String(slot)));
    this.#slots.set(roomId, slot);
  }

  async groupInfo(state: ClientState): Promise<string> {
    const groupInfo = await createGroupInfoWithExternalPubAndRatchetTree(state, [], this.suite.impl);
    return toB64u(encodeMlsMessage({ version: 'mls10', wireformat: 'mls_group_info', groupInfo }));
  }
}

export function isEpoch(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

export function changes(before: Member[], after: ClientState, device: { userId: string; deviceId: string }, own: boolean): CommitResult {
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
