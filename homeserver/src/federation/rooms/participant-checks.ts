import {
  eventId as computeEventId,
  prepareCheckedEvent,
  verifyEvent,
  verifyPreparedEventAsync,
  verifyRecord,
  verifyRecordAsync,
} from '@parley/federation/events';
import { type BytesVerifier, type KeyRing, VerifyPool } from '@parley/federation/keys';
import { check, type RoomEvent, RoomEvent as RoomEventSchema, SeqRecord as SeqRecordSchema } from '@parley/schemas';
import type { Db } from '../../db/database.js';
import { ParleyError } from '../../errors.js';
import type { Logger } from '../../logger.js';
import type { EventRepository, EventRow } from '../../repositories/events.js';
import type { OutboxRepository } from '../../repositories/outbox.js';
import type { RemoteInviteRepository } from '../../repositories/room-extras.js';
import type { RoomRepository } from '../../repositories/rooms.js';
import type { Clock } from '../../services/clock.js';
import { type RoomLog, relationOf, type SigningIdentity } from '../../services/room-log.js';
import type { StreamWriter } from '../../services/stream-bus.js';
import type { FederationContext } from '../setup.js';
import { type Entry, keyRingFor, MAX_JOIN_ENTRIES, type Snapshot } from './common.js';

// The participant side's checks of what a host sends (participant.ts): parsing, signatures,
// and the row an entry is stored as.

const VISIBILITIES = new Set(['world_readable', 'shared', 'invited', 'joined']);
// checkSignedMany lets workers' answers in (and feeds them more) after this many entries.
const BREATHE_EVERY = 128;
// Worker threads for the signatures of snapshot joins, one per core beyond the event loop's
// (none on one core); started on the first large join, idle ones keep no process alive.
const signaturePool = new VerifyPool();

/** What every part of the participant side works with (ParticipantRooms builds them). */
export interface ParticipantDeps {
  db: Db;
  rooms: RoomRepository;
  events: EventRepository;
  outbox: OutboxRepository;
  log: RoomLog;
  fed: FederationContext;
  identity: SigningIdentity;
  clock: Clock;
  logger: Logger;
  notify: (servers: Iterable<string>) => void;
  ttlMs: number;
  invites: RemoteInviteRepository;
  writer: StreamWriter;
}

/**
 * Event IDs whose signed form is known good here: events this server signed (our users'
 * sends, which come back from the host sequenced) and events already verified once. The ID
 * is the hash of the very bytes the origin signs, so for these the signature check, the
 * costly part, is skipped (verifyEvent's `trusted`). Bounded; the oldest go first.
 */
export class TrustedEventIds {
  private readonly ids = new Set<string>();

  constructor(private readonly max = 10_000) {}

  has(eventId: string): boolean {
    return this.ids.has(eventId);
  }

  add(eventId: string): void {
    if (this.ids.has(eventId)) return;
    this.ids.add(eventId);
    if (this.ids.size > this.max) this.ids.delete(this.ids.values().next().value as string);
  }
}

/** Signature checks of entries from a host, against the key store (keys fetched first). */
export class EntryChecks {
  readonly trusted = new TrustedEventIds();

  constructor(private readonly d: ParticipantDeps) {}

  /** verifyEvent, skipping the signature of events whose signed form is already known good. */
  verifyEvent(event: RoomEvent, ring: KeyRing, allowRedacted: boolean): ReturnType<typeof verifyEvent> {
    const verdict = verifyEvent(event, ring, { allowRedacted, trusted: this.trusted });
    if (verdict.ok) this.trusted.add(verdict.eventId);
    return verdict;
  }

  /** Record (host) and event (origin) signatures, content hash (redacted copies pass), event ID, room. */
  checkSigned(entry: Entry, host: string, roomId: string, ring: KeyRing): string | null {
    if (entry.record.room_id !== roomId || entry.event.room_id !== roomId) return 'entry of another room';
    if (computeEventId(entry.event) !== entry.record.event_id) return 'record names another event';
    const rec = verifyRecord(entry.record, host, ring);
    if (!rec.ok) return `record: ${rec.reason}`;
    const ev = this.verifyEvent(entry.event, ring, true);
    return ev.ok ? null : `event: ${ev.reason}`;
  }

  /**
   * checkSigned of many entries (a snapshot's state), with the Ed25519 checks shared between
   * the event loop and worker threads (VerifyPool): the loop derives each entry's signed bytes
   * and hashes while workers verify the signatures of the entries before it. Every signature
   * is still checked. Returns the first entry (in order) that fails and why, as checkSigned
   * finds it walking the entries one by one, or null when all verify. Only for entries from
   * parseEntries (whose shapes it checked): shapes are not validated a second time.
   */
  async checkSignedMany(
    entries: readonly Entry[],
    host: string,
    roomId: string,
    ring: KeyRing,
  ): Promise<{ index: number; problem: string } | null> {
    const batch = signaturePool.batch(entries.length * 2);
    const verdicts: Promise<string | null>[] = [];
    for (const [i, entry] of entries.entries()) {
      verdicts.push(this.checkSignedAsync(entry, host, roomId, ring, batch.verify));
      if (i % BREATHE_EVERY === BREATHE_EVERY - 1) await batch.breathe();
    }
    await batch.drain();
    const problems = await Promise.all(verdicts);
    const index = problems.findIndex((p) => p !== null);
    return index < 0 ? null : { index, problem: problems[index] as string };
  }

  private async checkSignedAsync(
    entry: Entry,
    host: string,
    roomId: string,
    ring: KeyRing,
    verifier: BytesVerifier,
  ): Promise<string | null> {
    if (entry.record.room_id !== roomId || entry.event.room_id !== roomId) return 'entry of another room';
    // parseEntries checked the event's and the record's shapes: the rest of their checks.
    const prepared = prepareCheckedEvent(entry.event);
    // An event that does not even prepare: the one-by-one check says why, in its words.
    if (!prepared.ok) return this.checkSigned(entry, host, roomId, ring);
    if (prepared.prepared.eventId !== entry.record.event_id) return 'record names another event';
    // Both signatures queued at once; the record's verdict is reported first, as checkSigned does.
    const [rec, ev] = await Promise.all([
      verifyRecordAsync(entry.record, host, ring, { verifier, shapeChecked: true }),
      verifyPreparedEventAsync(prepared.event, prepared.prepared, ring, { allowRedacted: true, trusted: this.trusted }, verifier),
    ]);
    if (!rec.ok) return `record: ${rec.reason}`;
    if (!ev.ok) return `event: ${ev.reason}`;
    this.trusted.add(ev.eventId);
    return null;
  }

  async prefetchKeys(entries: Entry[], host: string): Promise<void> {
    const servers = new Set([host, ...entries.map((e) => e.event.origin)]);
    await Promise.all(
      [...servers].map((s) => (s === this.d.identity.serverName ? Promise.resolve(true) : this.d.fed.keyStore.prefetch(s))),
    );
  }

  keyRing(): KeyRing {
    return keyRingFor(this.d.fed, this.d.identity);
  }

  /** Host and origin signatures, content hash and event ID of one entry: null when it verifies. */
  async verifyPushed(roomId: string, host: string, entry: Entry, allowRedacted = false): Promise<string | null> {
    if (entry.record.room_id !== roomId || entry.event.room_id !== roomId) return 'entry of another room';
    await this.prefetchKeys([entry], host);
    const ring = this.keyRing();
    if (entry.record.event_id !== computeEventId(entry.event)) return 'record names another event';
    const rec = verifyRecord(entry.record, host, ring);
    if (!rec.ok) return `record: ${rec.reason}`;
    const ev = this.verifyEvent(entry.event, ring, allowRedacted);
    return ev.ok ? null : `event: ${ev.reason}`;
  }
}

export function parseEntries(raw: unknown): Entry[] {
  if (!Array.isArray(raw) || raw.length > MAX_JOIN_ENTRIES)
    throw new ParleyError(502, 'PARLEY_UNAVAILABLE', 'the host answered with a malformed chain');
  return raw.map((e) => {
    const ok = check(RoomEventSchema, (e as Entry)?.event).ok && check(SeqRecordSchema, (e as Entry)?.record).ok;
    if (!ok) throw new ParleyError(502, 'PARLEY_UNAVAILABLE', 'the host answered with a malformed entry');
    return e as Entry;
  });
}

export function parseSnapshot(raw: { state?: unknown; anchor?: unknown }): Snapshot {
  const state = parseEntries(raw.state);
  const [anchor] = parseEntries([raw.anchor]);
  return { state, anchor: anchor as Entry };
}

/** A row for an entry stored out of order (snapshot, backfill below the complete part). */
export function rowOf(e: Entry): EventRow {
  const relation = relationOf(e.event.content);
  const visibility = e.meta?.visibility && VISIBILITIES.has(e.meta.visibility) ? e.meta.visibility : 'shared';
  return {
    event_id: e.record.event_id,
    room_id: e.record.room_id,
    seq: e.record.seq,
    type: e.event.type,
    state_key: e.event.state_key ?? null,
    sender: e.event.sender,
    origin_ts: e.event.origin_ts,
    event: e.event,
    record: e.record,
    visibility,
    redacted_by: typeof e.meta?.redacted_by === 'string' ? e.meta.redacted_by : null,
    rel_type: relation?.type ?? null,
    rel_event_id: relation?.event_id ?? null,
    rel_key: relation?.key ?? null,
  };
}

export function senderOfRedacted(entries: Entry[], event: RoomEvent): string | undefined {
  if (event.type !== 'room.redaction') return undefined;
  const target = entries.find((e) => e.record.event_id === event.content.redacts);
  return target?.event.sender;
}
