import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Redis } from 'ioredis';
import type { Knex } from 'knex';
import type { Db } from '../db/database.js';
import type { Logger } from '../logger.js';
import type { EventRepository } from '../repositories/events.js';
import type { NewNote, StreamNote, StreamRepository } from '../repositories/stream.js';
import { clientEventOf } from './client-event.js';
import type { Clock } from './clock.js';

/** Messages that are not stream entries: they carry no position and are not replayed. */
export type ControlMessage =
  | { type: 'revoke_device'; user_id: string; device_id: string }
  | { type: 'revoke_user'; user_id: string; except_device_id?: string }
  /** Access tokens replaced by a refresh: the device lives on, streams opened with these end. */
  | { type: 'revoke_tokens'; user_id: string; token_ids: string[] }
  /** The account's flags changed (admin, deactivated): cached sign-ins of the user are dropped. */
  | { type: 'auth_changed'; user_id: string };

/**
 * Whether a control message ends a stream opened with this token: 'revoked' when the device
 * (or the whole account) was signed out, 'replaced' when only the token was.
 */
export function revocationOf(
  msg: ControlMessage,
  stream: { userId: string; deviceId: string; tokenId: string },
): 'revoked' | 'replaced' | null {
  if (msg.user_id !== stream.userId) return null;
  switch (msg.type) {
    case 'revoke_device':
      return msg.device_id === stream.deviceId ? 'revoked' : null;
    case 'revoke_user':
      return msg.except_device_id === stream.deviceId ? null : 'revoked';
    case 'revoke_tokens':
      return msg.token_ids.includes(stream.tokenId) ? 'replaced' : null;
    default:
      return null;
  }
}

// How long a revocation waits for Redis to take its control message before answering anyway.
const CONTROL_PUBLISH_WAIT_MS = 2_000;

// How long an out-of-order note waits for the positions before it to arrive by pub/sub
// before they are read from the database instead.
const GAP_WAIT_MS = 50;

/**
 * Carries stream notes from the process that wrote them to every process, and hands them to
 * local listeners in position order with no gaps. Pub/sub is only a fast path: a position
 * that does not arrive (a publisher died between commit and publish, a rolled-back
 * allocation) is read from the database, which is the truth. Without Redis, one process.
 */
export class StreamBus {
  private readonly emitter = new EventEmitter();
  private readonly buffer = new Map<number, StreamNote>();
  private next = 1;
  private gapTimer: NodeJS.Timeout | null = null;
  private filling = false;
  private subscriber: Redis | null = null;
  private readonly channel: string;
  private readonly controlChannel: string;
  /** Tags this process's published notes; `ownPrefix` is how their JSON starts. */
  private readonly origin = randomUUID();
  private readonly ownPrefix = `{"origin":"${this.origin}"`;

  constructor(
    private readonly repo: StreamRepository,
    private readonly events: EventRepository,
    private readonly redis: Redis | null,
    private readonly log: Logger,
  ) {
    this.emitter.setMaxListeners(0);
    // ioredis does not prefix pub/sub channel names: prefix them here, so that servers sharing
    // one Redis under different prefixes keep separate channels.
    const prefix = (redis?.options.keyPrefix as string | undefined) ?? '';
    this.channel = `${prefix}stream`;
    this.controlChannel = `${prefix}stream-control`;
  }

  /** Position of the last note handed to listeners. */
  get position(): number {
    return this.next - 1;
  }

  async start(): Promise<void> {
    this.next = (await this.repo.maxPosition()) + 1;
    if (!this.redis) return;
    this.subscriber = this.redis.duplicate();
    this.subscriber.on('error', (err) => this.log.warn({ err: err.message }, 'stream subscriber error'));
    this.subscriber.on('message', (channel: string, message: string) => this.onMessage(channel, message));
    // Control messages sent while the subscriber was away are lost: say so on both edges.
    this.subscriber.on('close', () => this.emitter.emit('control-gap'));
    this.subscriber.on('ready', () => this.emitter.emit('control-gap'));
    await this.subscriber.subscribe(this.channel, this.controlChannel);
    // Anything committed between reading the max and subscribing is found by gap filling.
    this.next = Math.min(this.next, (await this.repo.maxPosition()) + 1);
  }

  async stop(): Promise<void> {
    if (this.gapTimer) clearTimeout(this.gapTimer);
    if (this.subscriber) {
      await this.subscriber.quit().catch(() => this.subscriber?.disconnect());
      this.subscriber = null;
    }
  }

  onNote(listener: (note: StreamNote) => void): () => void {
    this.emitter.on('note', listener);
    return () => this.emitter.off('note', listener);
  }

  onControl(listener: (msg: ControlMessage) => void): () => void {
    this.emitter.on('control', listener);
    return () => this.emitter.off('control', listener);
  }

  /** Called when control messages may have been missed (the Redis subscriber dropped). */
  onControlGap(listener: () => void): () => void {
    this.emitter.on('control-gap', listener);
    return () => this.emitter.off('control-gap', listener);
  }

  /**
   * Whether every control message sent from now on reaches this process: always without
   * Redis; with it, only while the subscriber is connected and subscribed.
   */
  controlLive(): boolean {
    if (!this.redis) return true;
    return this.subscriber !== null && this.subscriber.status === 'ready';
  }

  /**
   * Announces committed notes (already hydrated for live delivery). This process hands them
   * to its own listeners at once; with Redis the other processes get them by pub/sub, and
   * this process skips its own copy coming back (tagged with `origin`) unread.
   */
  publish(notes: StreamNote[]): void {
    if (notes.length === 0) return;
    if (this.redis) {
      this.redis
        .publish(this.channel, JSON.stringify({ origin: this.origin, notes }))
        .catch((err) => this.log.warn({ err: err.message }, 'stream publish failed'));
    }
    setImmediate(() => this.receive(notes));
  }

  /**
   * Sends a control message to every process. Resolves (never rejects) once Redis has handed
   * it to the subscribers, so a revocation can be answered after the other processes have it.
   */
  control(msg: ControlMessage): Promise<void> {
    if (this.redis) {
      const published = this.redis
        .publish(this.controlChannel, JSON.stringify(msg))
        .then(() => undefined)
        .catch((err) => this.log.warn({ err: err.message }, 'control publish failed'));
      // A Redis that does not answer must not hold a logout: the other processes' subscribers
      // are then down too, and a process does not use its token cache while its subscriber is.
      let timer: NodeJS.Timeout | undefined;
      const bound = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, CONTROL_PUBLISH_WAIT_MS);
        timer.unref();
      });
      return Promise.race([published, bound]).finally(() => clearTimeout(timer));
    }
    setImmediate(() => this.emitter.emit('control', msg));
    return Promise.resolve();
  }

  /** Asks for the database to be checked now (e.g. before a long-poll answers). */
  poke(): void {
    this.scheduleGapFill(0);
  }

  private onMessage(channel: string, message: string): void {
    try {
      // Our own notes coming back: handed over already (publish), so not even parsed.
      if (channel === this.channel && message.startsWith(this.ownPrefix)) return;
      const parsed = JSON.parse(message);
      if (channel === this.controlChannel) this.emitter.emit('control', parsed as ControlMessage);
      else this.receive(Array.isArray(parsed) ? (parsed as StreamNote[]) : (parsed as { notes: StreamNote[] }).notes);
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'unreadable stream message ignored');
    }
  }

  private receive(notes: StreamNote[]): void {
    for (const note of notes) if (note.position >= this.next) this.buffer.set(note.position, note);
    this.drain();
  }

  private drain(): void {
    while (this.buffer.has(this.next)) {
      const note = this.buffer.get(this.next) as StreamNote;
      this.buffer.delete(this.next);
      this.next += 1;
      try {
        this.emitter.emit('note', note);
      } catch (err) {
        this.log.error({ err }, 'stream listener failed');
      }
    }
    if (this.buffer.size > 0) this.scheduleGapFill(GAP_WAIT_MS);
  }

  private scheduleGapFill(delay: number): void {
    if (this.gapTimer || this.filling) return;
    this.gapTimer = setTimeout(() => {
      this.gapTimer = null;
      this.fillGap().catch((err) => {
        this.log.warn({ err: (err as Error).message }, 'stream gap fill failed; retrying');
        this.scheduleGapFill(500);
      });
    }, delay);
    this.gapTimer.unref();
  }

  /** Reads missing positions from the database; positions it does not hold never will be. */
  private async fillGap(): Promise<void> {
    this.filling = true;
    try {
      const upTo = this.buffer.size > 0 ? Math.min(...this.buffer.keys()) - 1 : await this.repo.maxPosition();
      if (upTo < this.next) return;
      const rows = await hydrate(await this.repo.range(this.next, upTo), this.events);
      for (const row of rows) if (row.position >= this.next) this.buffer.set(row.position, row);
      // Everything up to `upTo` is final in the database: skip positions that do not exist.
      for (let p = this.next; p <= upTo; p++) {
        if (!this.buffer.has(p)) this.next = p + 1;
        else break;
      }
    } finally {
      this.filling = false;
    }
    this.drain();
  }
}

/**
 * Adds the client form of room events to notes read back from the database, with the
 * history visibility in force at each event (what the stream's visibility check needs).
 */
export async function hydrate(notes: StreamNote[], events: EventRepository): Promise<StreamNote[]> {
  const ids = notes.filter((n) => n.kind === 'event' && !n.data.event).map((n) => n.data.event_id as string);
  if (ids.length === 0) return notes;
  const rows = new Map((await events.findMany(ids)).map((r) => [r.event_id, r]));
  return notes.map((n) => {
    if (n.kind !== 'event' || n.data.event) return n;
    const row = rows.get(n.data.event_id as string);
    return row ? { ...n, data: { ...n.data, event: clientEventOf(row), visibility: row.visibility } } : n;
  });
}

/** Writes stream notes in the caller's transaction and publishes them once it commits. */
export class StreamWriter {
  constructor(
    private readonly repo: StreamRepository,
    private readonly bus: StreamBus,
    private readonly clock: Clock,
  ) {}

  /** `live` adds fields to the published copy only (e.g. the rendered event). */
  async write(trx: Db, notes: Array<NewNote & { live?: Record<string, unknown> }>): Promise<StreamNote[]> {
    const stored = await this.repo.append(
      notes.map(({ live: _live, ...note }) => note),
      this.clock.now(),
      trx,
    );
    return this.publishOnCommit(trx, stored, notes);
  }

  /**
   * `write` as the end of one statement that first runs `writes` and `gate`
   * (StreamRepository.appendAfter): for a room's appends, whose events, txn rows and new head
   * go in with their notes.
   */
  async writeAfter(
    trx: Db,
    notes: Array<NewNote & { live?: Record<string, unknown> }>,
    writes: Knex.Sql[],
    gate: Knex.Sql,
  ): Promise<StreamNote[]> {
    const stored = await this.repo.appendAfter(
      notes.map(({ live: _live, ...note }) => note),
      this.clock.now(),
      trx,
      writes,
      gate,
    );
    return this.publishOnCommit(trx, stored, notes);
  }

  private publishOnCommit(trx: Db, stored: StreamNote[], notes: Array<{ live?: Record<string, unknown> }>): StreamNote[] {
    const published = stored.map((s, i) => ({ ...s, data: { ...s.data, ...(notes[i]?.live ?? {}) } }));
    const tx = trx as Knex.Transaction;
    if (tx.executionPromise) {
      tx.executionPromise.then(
        () => this.bus.publish(published),
        () => {},
      );
    } else {
      this.bus.publish(published);
    }
    return published;
  }

  /** For writes that are a transaction of their own (typing, receipts, presence). */
  async writeNow(db: Db, notes: NewNote[]): Promise<StreamNote[]> {
    return db.transaction((trx) => this.write(trx, notes));
  }
}
