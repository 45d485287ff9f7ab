import type { ClientEvent, MlsCommitContent, MlsWelcomeContent } from '@parley/schemas';
import { MAX_WELCOME_B64 } from '@parley/schemas';
import type { E2eApi } from '../e2e.js';
import type { RoomsApi } from '../rooms.js';
import type { CommitResult, CryptoDevice, PreparedCommit } from './device.js';
import type { CryptoFailureError } from './failures.js';
import type { Member } from './group-state.js';
import { membershipPlan } from './membership.js';
import type { TrustBook } from './session-trust.js';

/** What the session knows of one room's state. */
export interface RoomView {
  encrypted: boolean;
  /** Who sent `room.encryption` (the device of that user that has no group makes it). */
  encryptedBy: string | null;
  membership: Map<string, string>;
  /** Users whose membership was `join` at some point (their old messages stay readable). */
  everJoined: Set<string>;
}

export interface GroupDriverOptions {
  /** A member that is not the committer commits after (its rank among candidates) × this, if nobody did. */
  fallbackMs: number;
  /** A joined device with no group waits this long for a Welcome before joining by external commit. */
  welcomeWaitMs: number;
}

/** Most pages of history read backwards to find the commits a device missed. */
const MAX_CATCHUP_PAGES = 50;
/** Attempts at one membership change when other commits keep winning the slot. */
const MAX_COMMIT_ATTEMPTS = 8;
/** How long a commit the host queued (unreachable) is waited for before it is given up. */
const QUEUED_WAIT_MS = 30_000;

type Log = (msg: string) => void;

/**
 * The group side of an E2eSession: the room state it needs, commits applied in the host's
 * order, the commit rule run on every membership and device-list change, Welcomes and
 * external joins. Everything for one room runs in that room's queue (`run`).
 */
export class GroupDriver {
  readonly rooms = new Map<string, RoomView>();
  readonly #loading = new Map<string, Promise<RoomView>>();
  readonly #queues = new Map<string, Promise<unknown>>();
  readonly #timers = new Set<ReturnType<typeof setTimeout>>();
  readonly #reconcileQueued = new Set<string>();
  readonly #stale = new Set<string>();
  #closed = false;

  constructor(
    private readonly me: { userId: string; deviceId: string },
    private readonly device: () => CryptoDevice,
    private readonly e2e: E2eApi,
    private readonly roomsApi: RoomsApi,
    private readonly trust: TrustBook,
    private readonly options: GroupDriverOptions,
    private readonly hooks: {
      /** A room's group moved on (commit applied, joined): pending decrypts may work now. */
      changed: (roomId: string) => Promise<void>;
      /** After this device's commit was sequenced (backup, etc.). */
      committed: (roomId: string) => Promise<void>;
      /** After Welcomes went to-device: also deposit them in the added devices' mailboxes. */
      deposit?: (devices: { userId: string; deviceId: string }[], content: MlsWelcomeContent) => Promise<void>;
      log: Log;
    },
  ) {}

  close(): void {
    this.#closed = true;
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
  }

  /** Resolves once the work queued now for every room has finished. */
  async idle(): Promise<void> {
    await Promise.all([...this.#queues.values()]);
  }

  /** Runs `fn` after everything queued for `roomId`. */
  run<T>(roomId: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.#queues.get(roomId) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const tail = next.catch(() => undefined);
    this.#queues.set(roomId, tail);
    void tail.then(() => {
      if (this.#queues.get(roomId) === tail) this.#queues.delete(roomId);
    });
    return next;
  }

  isMember(roomId: string, userId: string): boolean {
    const room = this.rooms.get(roomId);
    return room === undefined || room.everJoined.has(userId);
  }

  joined(room: RoomView): Set<string> {
    return new Set([...room.membership].filter(([, m]) => m === 'join').map(([u]) => u));
  }

  /** The room's state as this session tracks it (fetched once, then kept by frames). */
  async ensureRoom(roomId: string): Promise<RoomView> {
    const known = this.rooms.get(roomId);
    if (known !== undefined) return known;
    let loading = this.#loading.get(roomId);
    if (loading === undefined) {
      loading = (async () => {
        const view: RoomView = { encrypted: false, encryptedBy: null, membership: new Map(), everJoined: new Set() };
        let ok = true;
        try {
          for (const e of await this.roomsApi.getState(roomId)) this.applyState(view, e);
        } catch (err) {
          ok = false;
          this.hooks.log(`room state of ${roomId} unavailable: ${(err as Error).message}`);
        }
        const raced = this.rooms.get(roomId);
        if (raced !== undefined) return raced;
        if (ok) this.rooms.set(roomId, view); // a failed fetch is tried again next time
        return view;
      })();
      this.#loading.set(roomId, loading);
      void loading.finally(() => this.#loading.delete(roomId));
    }
    return loading;
  }

  /** Membership changed: the next check refetches the room state (frames may replay older state events). */
  markStale(roomId: string): void {
    this.#stale.add(roomId);
  }

  /** Refetches the room's state into its view; on failure the view stays as it was. */
  async refreshRoom(roomId: string): Promise<RoomView> {
    const view = await this.ensureRoom(roomId);
    try {
      const events = await this.roomsApi.getState(roomId);
      const fresh: RoomView = { encrypted: false, encryptedBy: null, membership: new Map(), everJoined: new Set(view.everJoined) };
      for (const e of events) this.applyState(fresh, e);
      view.encrypted ||= fresh.encrypted;
      view.encryptedBy ??= fresh.encryptedBy;
      view.membership = fresh.membership;
      for (const u of fresh.everJoined) view.everJoined.add(u);
      this.#stale.delete(roomId);
    } catch (err) {
      this.hooks.log(`room state of ${roomId} unavailable: ${(err as Error).message}`);
    }
    return view;
  }

  applyState(view: RoomView, e: ClientEvent): void {
    if (e.type === 'room.encryption' && e.state_key === '') {
      view.encrypted = true;
      view.encryptedBy ??= e.sender;
    } else if (e.type === 'room.member' && typeof e.state_key === 'string') {
      const m = String((e.content as { membership?: unknown }).membership ?? 'leave');
      view.membership.set(e.state_key, m);
      if (m === 'join') view.everJoined.add(e.state_key);
    }
  }

  // ---- commits in the host's order ---------------------------------------------------------------

  /** Applies one sequenced commit; a commit naming users not pinned yet is retried after fetching them. */
  async applyCommit(roomId: string, content: MlsCommitContent): Promise<CommitResult> {
    let result = await this.device().processCommit(roomId, content);
    for (let i = 0; i < 2 && !result.ok && result.retry === true; i++) {
      await this.trust.lists(result.users ?? [], true);
      result = await this.device().processCommit(roomId, content);
    }
    if (!result.ok && result.reason !== 'stale_epoch' && result.reason !== 'missing_welcome')
      this.hooks.log(`commit in ${roomId} slot ${content.epoch}: ${result.reason} (${result.detail})`);
    return result;
  }

  /** catchUp that logs instead of throwing (history unreadable, server away). */
  async tryCatchUp(roomId: string): Promise<CommitResult[]> {
    try {
      return await this.catchUp(roomId);
    } catch (err) {
      this.hooks.log(`catching up ${roomId}: ${(err as Error).message}`);
      return [];
    }
  }

  /** Applies the commits of the timeline this device has not seen, oldest first. Returns the commits applied. */
  async catchUp(roomId: string): Promise<CommitResult[]> {
    const slot = await this.device().slot(roomId);
    if (slot === null) return [];
    const commits = new Map<number, MlsCommitContent>();
    let from: string | undefined;
    for (let page = 0; page < MAX_CATCHUP_PAGES; page++) {
      const res = await this.roomsApi.messages(roomId, { dir: 'b', limit: 100, ...(from === undefined ? {} : { from }) });
      let older = false;
      for (const e of res.chunk) {
        if (e.type !== 'room.mls.commit') continue;
        const c = e.content as unknown as MlsCommitContent;
        if (typeof c.epoch !== 'number') continue;
        if (c.epoch < slot) older = true;
        else if (!commits.has(c.epoch)) commits.set(c.epoch, c);
      }
      if (older || res.end === undefined || res.chunk.length === 0) break;
      from = res.end;
    }
    const applied: CommitResult[] = [];
    for (const epoch of [...commits.keys()].sort((a, b) => a - b)) {
      const r = await this.applyCommit(roomId, commits.get(epoch) as MlsCommitContent);
      if (r.ok) applied.push(r);
      else if (r.reason === 'unknown_epoch' || (r.reason === 'not_member' && r.retry === true)) break;
    }
    if (applied.length > 0) await this.hooks.changed(roomId);
    return applied;
  }

  /** The GroupInfo of the latest commit, if that commit carried one inline. */
  async latestGroupInfo(roomId: string): Promise<{ groupInfo: string; slot: number } | null> {
    let from: string | undefined;
    for (let page = 0; page < MAX_CATCHUP_PAGES; page++) {
      const res = await this.roomsApi.messages(roomId, { dir: 'b', limit: 100, ...(from === undefined ? {} : { from }) });
      for (const e of res.chunk) {
        if (e.type !== 'room.mls.commit') continue;
        const c = e.content as unknown as MlsCommitContent;
        return typeof c.group_info === 'string' ? { groupInfo: c.group_info, slot: c.epoch + 1 } : null;
      }
      if (res.end === undefined || res.chunk.length === 0) break;
      from = res.end;
    }
    return null;
  }

  // ---- joining ---------------------------------------------------------------------------------------

  /**
   * An `mls.welcome` to-device message (durable: it waits on the stream while the device is
   * away) or one read from this device's mailbox. 'joined' when this device joined from it,
   * 'unavailable' when the room's state could not be had to check the sender (try again
   * later), 'refused' otherwise.
   */
  async handleWelcome(sender: string, content: MlsWelcomeContent): Promise<'joined' | 'refused' | 'unavailable'> {
    const roomId = content.room_id;
    if (typeof roomId !== 'string' || typeof content.welcome !== 'string') return 'refused'; // welcome_ref: not fetched here
    const outcome = await this.run(roomId, async () => {
      const room = await this.ensureRoom(roomId);
      if (!this.rooms.has(roomId)) return 'unavailable' as const;
      // Only a member of the room may bring this device into its group.
      if (room.membership.get(sender) !== 'join') {
        this.hooks.log(`Welcome for ${roomId} from ${sender}, not a member: ignored`);
        return 'refused' as const;
      }
      await this.trust.lists(this.joined(room));
      let r = await this.device().joinFromWelcome(roomId, content.welcome as string, content.epoch);
      if (!r.ok && r.reason === 'not_member') {
        await this.trust.lists([...this.joined(room), ...(r.users ?? [])], true);
        r = await this.device().joinFromWelcome(roomId, content.welcome as string, content.epoch);
      }
      if (!r.ok) {
        const joined = [...this.joined(room)];
        const known = await this.trust.lists(joined);
        const missing = joined.filter((u) => !known.has(u));
        this.hooks.log(`Welcome for ${roomId}: ${r.reason} (${r.detail}); joined ${joined.join(' ')}; no list for ${missing.join(' ')}`);
        // Users whose lists could not be had (their server away): worth another try later.
        return missing.length > 0 ? ('unavailable' as const) : ('refused' as const);
      }
      await this.tryCatchUp(roomId);
      await this.hooks.changed(roomId);
      return 'joined' as const;
    });
    this.schedule(roomId);
    return outcome;
  }

  /** Joins by external commit from the latest GroupInfo; true when this device is in the group after. */
  async externalJoin(roomId: string): Promise<boolean> {
    for (let attempt = 0; attempt < MAX_COMMIT_ATTEMPTS; attempt++) {
      if (await this.#active(roomId)) return true;
      const gi = await this.latestGroupInfo(roomId);
      if (gi === null) return false;
      const room = await this.ensureRoom(roomId);
      await this.trust.lists(this.joined(room));
      let prepared: PreparedCommit | undefined;
      for (let i = 0; i < 2 && prepared === undefined; i++) {
        try {
          prepared = await this.device().prepareExternalJoin(roomId, gi.groupInfo, false, gi.slot);
        } catch (err) {
          const users = (err as CryptoFailureError).users;
          this.hooks.log(`external join of ${roomId}: ${(err as Error).message}`);
          if (users === undefined || i > 0) return false;
          await this.trust.lists(users, true);
        }
      }
      if (prepared === undefined) return false;
      const res = await this.e2e.sendCommit(roomId, prepared.content);
      if (res.status === 'sequenced') {
        await this.device().confirmCommit(roomId);
        await this.hooks.changed(roomId);
        await this.hooks.committed(roomId);
        return true;
      }
      await this.device().discardCommit(roomId);
      if (res.status === 'queued') await this.#waitSlot(roomId, prepared.content.epoch);
      // Lost the slot: most likely to the commit that adds this device; its Welcome is on the way.
      else return false;
    }
    return false;
  }

  /** A commit that only refreshes this device's keys (post-compromise security); retried until sequenced. */
  async updateKeys(roomId: string): Promise<void> {
    for (let attempt = 0; attempt < MAX_COMMIT_ATTEMPTS; attempt++) {
      const prepared = await this.device().prepareCommit(roomId, { update: true });
      const res = await this.e2e.sendCommit(roomId, prepared.content);
      this.hooks.log(`key update in ${roomId} slot ${prepared.content.epoch}: ${res.status}`);
      if (res.status === 'sequenced') {
        await this.device().confirmCommit(roomId);
        await this.hooks.changed(roomId);
        await this.hooks.committed(roomId);
        return;
      }
      if (res.status === 'queued') {
        const applied = await this.#waitSlot(roomId, prepared.content.epoch);
        if (applied.some((r) => r.ok && r.own)) return;
      } else {
        await this.catchUp(roomId);
      }
      await this.device().discardCommit(roomId);
    }
    throw new Error(`${roomId}: key update gave up after ${MAX_COMMIT_ATTEMPTS} lost slots`);
  }

  async #active(roomId: string): Promise<boolean> {
    const group = await this.device().members(roomId);
    return group.some((m) => m.userId === this.me.userId && m.deviceId === this.me.deviceId);
  }

  async #waitSlot(roomId: string, epoch: number): Promise<CommitResult[]> {
    const deadline = Date.now() + QUEUED_WAIT_MS;
    const applied: CommitResult[] = [];
    while (Date.now() < deadline && !this.#closed) {
      applied.push(...(await this.catchUp(roomId)));
      const slot = await this.device().slot(roomId);
      if (slot !== null && slot > epoch) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    return applied;
  }

  // ---- the commit rule ---------------------------------------------------------------------------------

  /** Queues a membership check for the room (coalesced). */
  schedule(roomId: string, force = false): void {
    if (this.#closed) return;
    const key = `${roomId}\u0000${force}`;
    if (this.#reconcileQueued.has(key)) return;
    this.#reconcileQueued.add(key);
    void this.run(roomId, async () => {
      this.#reconcileQueued.delete(key);
      await this.reconcile(roomId, force);
    }).catch((err) => this.hooks.log(`membership of ${roomId}: ${(err as Error).message}`));
  }

  #later(ms: number, fn: () => void): void {
    if (this.#closed) return;
    const t = setTimeout(() => {
      this.#timers.delete(t);
      if (!this.#closed) fn();
    }, ms);
    this.#timers.add(t);
  }

  /**
   * Runs `membershipPlan` and commits when this device is the committer (or `force`: before
   * sending, and when the committer stayed silent past the fallback delay). Call in the room's queue.
   */
  async reconcile(roomId: string, force = false, refresh = force): Promise<void> {
    let room = await this.ensureRoom(roomId);
    if (!room.encrypted) return; // only encrypted rooms cost a state fetch on membership changes
    if (refresh || this.#stale.has(roomId)) room = await this.refreshRoom(roomId);
    if (room.membership.get(this.me.userId) !== 'join') return;
    const device = this.device();
    if (!(await this.#active(roomId))) {
      if (!device.certified) return;
      // Wait for a Welcome; then join by external commit if none came.
      this.#later(force ? 0 : this.options.welcomeWaitMs, () => {
        void this.run(roomId, async () => {
          if (!(await this.#active(roomId))) {
            await this.tryCatchUp(roomId);
            if (!(await this.#active(roomId))) await this.externalJoin(roomId);
          }
        }).catch((err) => this.hooks.log(`external join of ${roomId}: ${(err as Error).message}`));
      });
      return;
    }
    await this.#commitPlan(roomId, room, force);
  }

  async #plan(roomId: string, room: RoomView) {
    const group = await this.device().members(roomId);
    const joined = this.joined(room);
    const lists = await this.trust.lists(new Set([...joined, ...group.map((m) => m.userId)]));
    const devices = new Map<string, string[]>();
    for (const u of joined) {
      const inGroup = group.filter((m) => m.userId === u).map((m) => m.deviceId);
      const list = lists.get(u);
      // Unknown list or a changed key: keep the user's leaves as they are, add nothing.
      let ds = list === undefined || this.trust.trust(u) === 'key_changed' ? inGroup : [...list.devices];
      if (u === this.me.userId && !ds.includes(this.me.deviceId)) ds = [...ds, this.me.deviceId];
      devices.set(u, ds);
    }
    return { group, plan: membershipPlan({ me: this.me, group, joined, devices }), joined, devices };
  }

  async #commitPlan(roomId: string, room: RoomView, force: boolean): Promise<void> {
    const claimed = new Map<string, string>();
    for (let attempt = 0; attempt < MAX_COMMIT_ATTEMPTS; attempt++) {
      const { group, plan, joined, devices } = await this.#plan(roomId, room);
      if (plan.add.length + plan.remove.length === 0) return;
      if (!plan.mine && !force) {
        const candidates = group
          .filter((m) => joined.has(m.userId) && (devices.get(m.userId) ?? []).includes(m.deviceId))
          .sort((a, b) => a.leafIndex - b.leafIndex);
        const rank = candidates.findIndex((m) => m.userId === this.me.userId && m.deviceId === this.me.deviceId);
        if (rank > 0) this.#later(this.options.fallbackMs * rank, () => this.schedule(roomId, true));
        return;
      }
      const need = plan.add.filter((d) => !claimed.has(`${d.userId}\u0000${d.deviceId}`));
      if (need.length > 0) {
        const users: Record<string, string[]> = {};
        for (const d of need) users[d.userId] = [...(users[d.userId] ?? []), d.deviceId];
        try {
          const res = await this.e2e.claimKeyPackages(users);
          for (const [u, byDevice] of Object.entries(res.key_packages))
            for (const [d, kp] of Object.entries(byDevice)) claimed.set(`${u}\u0000${d}`, kp.key_package);
        } catch (err) {
          this.hooks.log(`claiming key packages in ${roomId}: ${(err as Error).message}`);
        }
      }
      const add = plan.add.map((d) => claimed.get(`${d.userId}\u0000${d.deviceId}`)).filter((k): k is string => k !== undefined);
      const seen = new Set<string>();
      const remove = plan.remove.filter((d) => {
        const key = `${d.userId}\u0000${d.deviceId}`;
        if (seen.has(key) || (d.userId === this.me.userId && d.deviceId === this.me.deviceId)) return false;
        seen.add(key);
        return true;
      });
      if (add.length + remove.length === 0) return;
      let prepared: PreparedCommit;
      try {
        prepared = await this.device().prepareCommit(roomId, { add, remove });
      } catch (err) {
        this.hooks.log(`commit in ${roomId} not made: ${(err as Error).message}`);
        return;
      }
      const res = await this.e2e.sendCommit(roomId, prepared.content);
      this.hooks.log(
        `membership commit in ${roomId} slot ${prepared.content.epoch} (+${add.length} -${remove.length}${force ? ', forced' : ''}): ${res.status}`,
      );
      if (res.status === 'sequenced') {
        await this.device().confirmCommit(roomId);
        await this.#sendWelcomes(roomId, prepared, res.eventId);
        await this.hooks.changed(roomId);
        await this.hooks.committed(roomId);
        return;
      }
      if (res.status === 'queued') {
        const applied = await this.#waitSlot(roomId, prepared.content.epoch);
        if (applied.some((r) => r.ok && r.own)) {
          await this.#sendWelcomes(roomId, prepared, res.eventId);
          await this.hooks.committed(roomId);
          return;
        }
      } else {
        // Another commit took the slot: apply it (it drops ours), then plan again on the new epoch.
        await this.catchUp(roomId);
      }
      await this.device().discardCommit(roomId);
      for (const r of [...claimed.keys()]) {
        // Packages of devices the winner added are spent; those not added yet stay usable.
        const [u, d] = r.split('\u0000') as [string, string];
        if ((await this.device().members(roomId)).some((m: Member) => m.userId === u && m.deviceId === d)) claimed.delete(r);
      }
    }
    this.hooks.log(`membership commit in ${roomId}: gave up after ${MAX_COMMIT_ATTEMPTS} lost slots`);
  }

  async #sendWelcomes(roomId: string, prepared: PreparedCommit, eventId: string): Promise<void> {
    if (prepared.welcome === undefined || prepared.welcomeFor.length === 0) return;
    if (prepared.welcome.length > MAX_WELCOME_B64) {
      // Too large to travel inline: the added devices join by external commit instead.
      this.hooks.log(`Welcome for ${roomId} is ${prepared.welcome.length} characters: not sent inline`);
      return;
    }
    const content: MlsWelcomeContent = {
      room_id: roomId,
      epoch: prepared.content.epoch + 1,
      welcome: prepared.welcome,
      commit_event_id: eventId,
    };
    try {
      await this.e2e.sendWelcome(prepared.welcomeFor, content);
    } catch (err) {
      this.hooks.log(`sending Welcomes for ${roomId}: ${(err as Error).message}`);
    }
    // In the background: a slow mailbox server must not hold the room's queue.
    void this.hooks.deposit?.(prepared.welcomeFor, content).catch((err) => this.hooks.log(`mailbox deposit: ${(err as Error).message}`));
  }
}
