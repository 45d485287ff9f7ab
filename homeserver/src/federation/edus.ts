import {
  check,
  type DeviceListEdu,
  EduSchemas,
  type EduType,
  type PresenceEdu,
  type PresenceState,
  parseUserId,
  type ReceiptEdu,
  type ToDeviceEdu,
  type TypingEdu,
} from '@parley/schemas';
import type { Db } from '../db/database.js';
import type { Logger } from '../logger.js';
import type { EduRepository } from '../repositories/edus.js';
import type { EventRepository } from '../repositories/events.js';
import type { OutboxRepository } from '../repositories/outbox.js';
import type { ReadMarkerRepository } from '../repositories/room-extras.js';
import type { RoomRepository } from '../repositories/rooms.js';
import type { Clock } from '../services/clock.js';
import type { PresenceService } from '../services/presence.js';
import type { RoomLog } from '../services/room-log.js';
import type { StreamWriter } from '../services/stream-bus.js';
import type { TimelineService } from '../services/timeline.js';
import type { RemoteToDevice, ToDeviceService } from '../services/to-device.js';
import type { TypingService } from '../services/typing.js';

/**
 * Ephemeral data over federation (docs/protocol.md): typing, public read receipts, presence and
 * to-device messages of local users go to the servers that need them, through the outbox
 * (kind `edu`) and the same transactions as room events; what other servers send is checked
 * item by item and applied as if it were local, so clients see the same frames.
 *
 * Typing, presence and receipts are state: the latest per key replaces an undelivered older
 * one (coalescing), and typing and presence expire quickly when a destination cannot take
 * them. To-device messages are durable like events and deduplicated by the receiver.
 */

/** A stop notice (or a start, at most its own timeout) is worthless after this. */
export const TYPING_TTL_MS = 30_000;
/** Presence older than this is not worth sending; the next change will be. */
export const PRESENCE_TTL_MS = 5 * 60_000;
/** Delay before our members' presence is sent to a server that just joined one of our rooms. */
const INTRODUCE_DELAY_MS = 3_000;
const PRUNE_INTERVAL_MS = 3600_000;

export interface FederatedEdusDeps {
  db: Db;
  serverName: string;
  rooms: RoomRepository;
  events: EventRepository;
  markers: ReadMarkerRepository;
  outbox: OutboxRepository;
  repo: EduRepository;
  writer: StreamWriter;
  typing: TypingService;
  presence: PresenceService;
  toDevice: ToDeviceService;
  timeline: TimelineService;
  roomLog: RoomLog;
  clock: Clock;
  log: Logger;
  /** Schedules delivery to these servers (after the rows are committed). */
  notify: (servers: Iterable<string>) => void;
  /** TTL of durable rows (to-device, receipts): the outbox TTL. */
  durableTtlMs: number;
}

export interface ReceiveSummary {
  applied: number;
  refused: number;
}

type Verdict = string | null;

const serverOf = (id: string) => parseUserId(id)?.server ?? '';

export class FederatedEdus implements RemoteToDevice {
  private readonly pruneTimer: NodeJS.Timeout;
  /** Set by E2E keys: applies a remote user's device-list change; null when accepted. */
  deviceLists: ((origin: string, edu: DeviceListEdu) => Promise<Verdict>) | null = null;

  constructor(private readonly d: FederatedEdusDeps) {
    this.pruneTimer = setInterval(() => {
      d.repo.pruneToDevice(d.clock.now() - d.durableTtlMs * 2).catch((err) => d.log.warn({ err: err.message }, 'to-device prune failed'));
    }, PRUNE_INTERVAL_MS);
    this.pruneTimer.unref();
  }

  /** Hooks the local services up; call once at start. */
  attach(): void {
    const { typing, presence, toDevice, timeline } = this.d;
    typing.federate = (roomId, userId, isTyping, timeoutMs) => this.background(this.sendTyping(roomId, userId, isTyping, timeoutMs));
    presence.federate = (userId, state, lastActiveTs) => this.background(this.sendPresence(userId, state, lastActiveTs));
    timeline.federateReceipt = (roomId, userId, eventId, ts) => this.background(this.sendReceipt(roomId, userId, eventId, ts));
    toDevice.remote = this;
    this.d.roomLog.onJoins = (roomId, userIds) => {
      const local = userIds.filter((u) => this.isLocal(u));
      if (local.length > 0) this.background(this.introduce(roomId, local));
      // A joining server stores the room only once the host has answered its join: give it
      // time before telling it about our members (best-effort, like all presence).
      const remote = userIds.filter((u) => !this.isLocal(u));
      if (remote.length > 0) setTimeout(() => this.background(this.introduce(roomId, remote)), INTRODUCE_DELAY_MS).unref();
    };
  }

  stop(): void {
    clearInterval(this.pruneTimer);
    const { typing, presence, toDevice, timeline } = this.d;
    typing.federate = null;
    presence.federate = null;
    timeline.federateReceipt = null;
    toDevice.remote = null;
    this.d.roomLog.onJoins = null;
  }

  /**
   * Presence changes are sent when they happen, so a server that starts sharing a room with
   * our users has not heard theirs: when a user of another server joins, its server gets the
   * presence of our members of the room; when one of ours joins, the room's other servers get
   * theirs.
   */
  async introduce(roomId: string, joined: string[]): Promise<void> {
    const others = await this.roomServers(roomId);
    if (others.length === 0) return;
    const newServers = new Set(joined.filter((u) => !this.isLocal(u)).map(serverOf));
    const ours = (await this.d.rooms.members(roomId, 'join')).map((m) => m.user_id).filter((u) => this.isLocal(u));
    // user → the servers that should hear of them now
    const plan = new Map<string, Set<string>>(ours.map((user) => [user, new Set(newServers)]));
    for (const user of joined.filter((u) => this.isLocal(u))) plan.set(user, new Set(others));
    // One query per thousand members, not one each: a server joining a room of 10,000 of our
    // members made us run 10,000 lookups while it was still checking the room's snapshot.
    const states = await this.d.presence.getMany([...plan.keys()].filter((user) => (plan.get(user)?.size ?? 0) > 0));
    for (const [user, servers] of plan) {
      if (servers.size === 0) continue;
      const { presence, last_active_ts } = states.get(user) ?? { presence: 'offline', last_active_ts: null };
      if (presence === 'offline' && last_active_ts === null) continue;
      const ago = last_active_ts === null ? null : Math.max(0, this.d.clock.now() - last_active_ts);
      const edu: PresenceEdu = { type: 'presence', user_id: user, presence, last_active_ago: ago };
      await this.latest([...servers], `presence ${user}`, edu, PRESENCE_TTL_MS);
    }
  }

  // ---- outgoing ---------------------------------------------------------------------------

  private isLocal(userId: string): boolean {
    return serverOf(userId) === this.d.serverName;
  }

  /** Other servers with a joined member in the room. */
  private async roomServers(roomId: string): Promise<string[]> {
    return (await this.d.rooms.memberServers(roomId)).filter((s) => s !== this.d.serverName);
  }

  async sendTyping(roomId: string, userId: string, typing: boolean, timeoutMs: number): Promise<void> {
    if (!this.isLocal(userId)) return;
    const servers = await this.roomServers(roomId);
    const edu: TypingEdu = { type: 'typing', room_id: roomId, user_id: userId, typing, timeout_ms: timeoutMs };
    // A start is stale once its own timeout has passed; a stop once the receiver's would have.
    await this.latest(servers, `typing ${roomId} ${userId}`, edu, typing ? Math.min(timeoutMs, TYPING_TTL_MS) : TYPING_TTL_MS);
  }

  async sendReceipt(roomId: string, userId: string, eventId: string, ts: number): Promise<void> {
    if (!this.isLocal(userId)) return;
    const servers = await this.roomServers(roomId);
    const edu: ReceiptEdu = { type: 'receipt', room_id: roomId, user_id: userId, event_id: eventId, ts };
    await this.latest(servers, `receipt ${roomId} ${userId}`, edu, this.d.durableTtlMs);
  }

  async sendPresence(userId: string, presence: PresenceState, lastActiveTs: number | null): Promise<void> {
    if (!this.isLocal(userId)) return;
    const joined = (await this.d.rooms.roomsOf(userId)).filter((m) => m.membership === 'join');
    const servers = new Set<string>();
    for (const m of joined) for (const s of await this.roomServers(m.room_id)) servers.add(s);
    // Relative, so the receiver needs no clock agreement with us.
    const ago = lastActiveTs === null ? null : Math.max(0, this.d.clock.now() - lastActiveTs);
    const edu: PresenceEdu = { type: 'presence', user_id: userId, presence, last_active_ago: ago };
    await this.latest([...servers], `presence ${userId}`, edu, PRESENCE_TTL_MS);
  }

  /** RemoteToDevice: one durable item per destination server, in the sender's transaction. */
  async enqueue(trx: Db, server: string, message: Omit<ToDeviceEdu, 'type'>): Promise<void> {
    const edu: ToDeviceEdu = { type: 'to_device', ...message };
    await this.d.outbox.enqueue([server], 'edu', edu, this.d.clock.now(), this.d.durableTtlMs, trx);
    const tx = trx as unknown as { executionPromise?: Promise<unknown> };
    void tx.executionPromise?.then(
      () => this.d.notify([server]),
      () => {},
    );
  }

  private async latest(servers: string[], key: string, edu: Record<string, unknown>, ttlMs: number): Promise<void> {
    if (servers.length === 0) return;
    await this.d.repo.enqueueLatest(servers, key, edu, this.d.clock.now(), ttlMs);
    this.d.notify(servers);
  }

  /** Off the client's request path: losing a typing notice must never fail what caused it. */
  private background(work: Promise<void>): void {
    work.catch((err) => this.d.log.warn({ err: (err as Error).message }, 'could not queue ephemeral data for federation'));
  }

  // ---- incoming ---------------------------------------------------------------------------

  /**
   * The `edus` of a transaction from `origin`. Each is validated and applied on its own;
   * refusals are logged and skipped, never thrown, so they cannot fail the transaction.
   */
  async receive(origin: string, edus: unknown[], log: Logger): Promise<ReceiveSummary> {
    const summary: ReceiveSummary = { applied: 0, refused: 0 };
    for (const raw of edus) {
      const type = (raw as { type?: unknown })?.type;
      let problem: Verdict;
      try {
        problem = await this.receiveOne(origin, raw, type);
      } catch (err) {
        problem = `could not be applied: ${(err as Error).message}`;
        log.error({ err, origin, edu_type: String(type).slice(0, 40) }, 'applying a federated EDU failed');
      }
      if (problem === null) summary.applied++;
      else {
        summary.refused++;
        log.warn({ origin, edu_type: String(type).slice(0, 40), problem }, 'refused a federated EDU');
      }
    }
    return summary;
  }

  private async receiveOne(origin: string, raw: unknown, type: unknown): Promise<Verdict> {
    // hasOwn, not `in`: `constructor` or `__proto__` would find Object.prototype's members.
    if (typeof type !== 'string' || !Object.hasOwn(EduSchemas, type)) return 'not an EDU of a known type';
    const parsed = check(EduSchemas[type as EduType], raw);
    if (!parsed.ok) return `${type}: ${parsed.message}`;
    const edu = parsed.value;
    switch (edu.type) {
      case 'typing':
        return this.receiveTyping(origin, edu);
      case 'receipt':
        return this.receiveReceipt(origin, edu);
      case 'presence':
        return this.receivePresence(origin, edu);
      case 'to_device':
        return this.receiveToDevice(origin, edu);
      case 'device_list':
        return this.deviceLists ? this.deviceLists(origin, edu) : 'device lists are not handled here';
    }
  }

  /** Room EDUs: the user must be of the origin and joined to the room as we know it. */
  private async roomCheck(origin: string, roomId: string, userId: string): Promise<Verdict> {
    if (serverOf(userId) !== origin) return `${origin} may not speak for ${userId}`;
    if (!(await this.d.rooms.find(roomId))) return `this server is not in ${roomId}`;
    if ((await this.d.rooms.membership(roomId, userId)) !== 'join') return `${userId} is not joined to ${roomId}`;
    return null;
  }

  private async receiveTyping(origin: string, edu: TypingEdu): Promise<Verdict> {
    const problem = await this.roomCheck(origin, edu.room_id, edu.user_id);
    if (problem) return problem;
    await this.d.typing.set(edu.user_id, edu.room_id, edu.typing, edu.timeout_ms);
    return null;
  }

  private async receiveReceipt(origin: string, edu: ReceiptEdu): Promise<Verdict> {
    const problem = await this.roomCheck(origin, edu.room_id, edu.user_id);
    if (problem) return problem;
    const event = await this.d.events.find(edu.event_id);
    if (!event || event.room_id !== edu.room_id) return `no event ${edu.event_id} in ${edu.room_id} here`;
    // Their clock, kept as they sent it (clients show it; nothing here orders by it).
    if (!(await this.d.markers.advance(edu.room_id, edu.user_id, edu.event_id, event.seq, edu.ts))) return null;
    await this.d.writer.writeNow(this.d.db, [
      {
        kind: 'receipt',
        room_id: edu.room_id,
        private: false,
        user_id: edu.user_id,
        device_id: null,
        room_ids: null,
        data: { room_id: edu.room_id, user_id: edu.user_id, event_id: edu.event_id, private: false, ts: edu.ts },
      },
    ]);
    return null;
  }

  private async receivePresence(origin: string, edu: PresenceEdu): Promise<Verdict> {
    if (serverOf(edu.user_id) !== origin) return `${origin} may not speak for ${edu.user_id}`;
    // Only users someone here can see: no storing presence of strangers.
    if (!(await this.d.rooms.roomsOf(edu.user_id)).some((m) => m.membership === 'join'))
      return `${edu.user_id} shares no room with this server`;
    const lastActive = edu.last_active_ago === null ? null : this.d.clock.now() - edu.last_active_ago;
    await this.d.presence.applyRemote(edu.user_id, edu.presence, lastActive);
    return null;
  }

  private async receiveToDevice(origin: string, edu: ToDeviceEdu): Promise<Verdict> {
    if (serverOf(edu.sender) !== origin) return `${origin} may not speak for ${edu.sender}`;
    const foreign = Object.keys(edu.messages).find((u) => serverOf(u) !== this.d.serverName);
    if (foreign) return `${foreign} is not a user of this server`;
    await this.d.toDevice.deliverRemote(edu.sender, edu.sender_device, edu.message_type, edu.messages, (trx) =>
      this.d.repo.recordToDevice(origin, edu.message_id, this.d.clock.now(), trx),
    );
    return null;
  }
}
