import type { RoomEvent, SeqRecord } from '@parley/schemas';
import { roomHost } from '../events/ids.js';
import { verifyRecord } from '../events/records.js';
import { prepareEvent, verifyPreparedEvent } from '../events/verify-event.js';
import type { KeyRing } from '../keys/signing-key.js';
import { type AuthorizeFn, type StateMap, stateKey } from './state.js';

export interface ChainEntry {
  event: RoomEvent;
  record: SeqRecord;
}

export type ChainFailureKind =
  | 'malformed'
  | 'seq'
  | 'room'
  | 'event_id'
  | 'prev'
  | 'record_signature'
  | 'signature'
  | 'content_hash'
  | 'auth';

export type ChainResult =
  | { ok: true; head: string | null; count: number; state: StateMap }
  | { ok: false; seq: number; event_id: string | null; kind: ChainFailureKind; reason: string };

export interface VerifyChainOptions {
  /**
   * Event IDs known to be redacted. When given, only these may arrive in redacted form;
   * without it, any event equal to its own redaction passes the content-hash check.
   */
  redactedEventIds?: ReadonlySet<string>;
  /** The room the chain must belong to; without it, the first record's room is the chain's. */
  roomId?: string;
  /**
   * Continue a chain already verified up to `seq` whose last record hash is `head`, with the
   * room state at that point (required to re-run auth rules). Without it, entries start at seq 1.
   */
  after?: { seq: number; head: string; state?: StateMap; mlsEpoch?: number | null };
}

/**
 * Verifies a room log (docs/protocol.md) entry by entry in seq order and reports the first failure:
 * seq without gaps (a reordered or dropped entry shows here or at `prev`), one room, the
 * record naming this exact event, `prev` linking to the previous record, the host's record
 * signature, the origin's event signature and content hash (redacted copies pass), and the
 * auth rules replayed over the state built so far. Never throws.
 */
export function verifyChain(
  entries: readonly ChainEntry[],
  keyRing: KeyRing,
  authorize?: AuthorizeFn,
  options: VerifyChainOptions = {},
): ChainResult {
  const after = options?.after;
  if (after !== undefined && !isContinuation(after)) {
    return { ok: false, seq: 1, event_id: null, kind: 'malformed', reason: 'options.after: expected { seq, head, state? }' };
  }
  // A copy: the caller's state stays the state at `after`, whatever this chain holds.
  const state: StateMap = new Map(after?.state ?? []);
  let prev: string | null = after?.head ?? null;
  let seq = after?.seq ?? 0;
  let room: string | undefined = typeof options?.roomId === 'string' ? options.roomId : undefined;
  if (!Array.isArray(entries)) return { ok: false, seq: seq + 1, event_id: null, kind: 'malformed', reason: 'entries: expected an array' };

  const senders = new Map<string, string>();
  // The room's MLS epoch as the chain's commits advance it (docs/protocol.md), for the first-commit-wins rule.
  const mls = { epoch: after ? (after.mlsEpoch ?? null) : null };
  for (const entry of entries) {
    seq += 1;
    const failure = checkEntry(entry, { seq, prev, room, state, keyRing, authorize, redacted: options?.redactedEventIds, senders, mls });
    if (!failure.ok) return failure;
    room = failure.room;
    prev = failure.hash;
  }
  return { ok: true, head: prev, count: entries.length, state };
}

// Mirrors room/auth-mls.ts nextMlsEpoch (chain/ does not import the room rules).
function nextEpoch(current: number | null, event: RoomEvent): number | null {
  if (event.type === 'room.encryption' && event.state_key === '') return current ?? 0;
  const epoch = event.content.epoch;
  if (event.type === 'room.mls.commit' && typeof epoch === 'number' && Number.isSafeInteger(epoch) && epoch >= 0) return epoch + 1;
  return current;
}

function isContinuation(after: unknown): after is NonNullable<VerifyChainOptions['after']> {
  const a = after as VerifyChainOptions['after'];
  return (
    typeof a === 'object' &&
    a !== null &&
    Number.isSafeInteger(a.seq) &&
    a.seq >= 0 &&
    typeof a.head === 'string' &&
    (a.state === undefined || a.state instanceof Map)
  );
}

interface Expected {
  seq: number;
  prev: string | null;
  room: string | undefined;
  state: StateMap;
  keyRing: KeyRing;
  authorize: AuthorizeFn | undefined;
  redacted: ReadonlySet<string> | undefined;
  /** event_id → sender of every event so far, for judging redactions. */
  senders: Map<string, string>;
  /** MLS epoch before this entry; null while unknown (no room.encryption seen yet, or a continuation without it). */
  mls: { epoch: number | null };
}

type EntryResult = { ok: true; room: string; hash: string } | Extract<ChainResult, { ok: false }>;

function checkEntry(entry: unknown, x: Expected): EntryResult {
  const record = (entry as ChainEntry | null)?.record;
  const event = (entry as ChainEntry | null)?.event;
  const claimedId = typeof record?.event_id === 'string' ? record.event_id : null;
  const fail = (kind: ChainFailureKind, reason: string): EntryResult => ({ ok: false, seq: x.seq, event_id: claimedId, kind, reason });
  try {
    // Shape first: nothing below can be judged on a record or event that is not one.
    const host = roomHost(record?.room_id);
    if (typeof record !== 'object' || record === null || host === null)
      return fail('malformed', 'record: missing or without a valid room_id');
    if (record.seq !== x.seq) return fail('seq', `expected seq ${x.seq}, the record says ${String(record.seq)}`);
    const prepared = prepareEvent(event);
    if (!prepared.ok) return fail('malformed', prepared.reason);
    const room = x.room ?? record.room_id;
    if (record.room_id !== room) return fail('room', `record is for ${record.room_id}, the chain is ${room}`);
    if (prepared.event.room_id !== room) return fail('room', `event is for ${prepared.event.room_id}, the chain is ${room}`);
    if (record.event_id !== prepared.prepared.eventId) {
      return fail('event_id', `record names ${String(record.event_id)}, the event is ${prepared.prepared.eventId}`);
    }
    if (record.prev !== x.prev) return fail('prev', `record links to ${String(record.prev)}, the previous record is ${String(x.prev)}`);
    const recordCheck = verifyRecord(record, host, x.keyRing);
    if (!recordCheck.ok) return fail(recordCheck.kind === 'malformed' ? 'malformed' : 'record_signature', recordCheck.reason);

    const authorship = verifyPreparedEvent(prepared.event, prepared.prepared, x.keyRing, { allowRedacted: true });
    if (!authorship.ok) return fail(authorship.kind === 'size' ? 'malformed' : authorship.kind, authorship.reason);
    if (authorship.redacted && x.redacted && !x.redacted.has(authorship.eventId)) {
      return fail('content_hash', 'content hash mismatch (redacted form of an event not known to be redacted)');
    }

    x.senders.set(authorship.eventId, prepared.event.sender);
    if (x.authorize) {
      const redacts = prepared.event.type === 'room.redaction' ? prepared.event.content.redacts : undefined;
      const target = typeof redacts === 'string' ? x.senders.get(redacts) : undefined;
      const ctx = target === undefined ? {} : { redactedEventSender: target };
      const verdict = x.authorize(x.state, prepared.event, x.mls.epoch === null ? ctx : { ...ctx, mlsEpoch: x.mls.epoch });
      if (!verdict?.ok) return fail('auth', verdict?.reason ?? 'refused by the auth rules');
    }
    x.mls.epoch = nextEpoch(x.mls.epoch, prepared.event);
    if (prepared.event.state_key !== undefined) x.state.set(stateKey(prepared.event.type, prepared.event.state_key), prepared.event);
    return { ok: true, room, hash: recordCheck.hash };
  } catch (err) {
    // Only the caller's authorize can throw here; its failure is this entry's failure.
    return fail('auth', `authorize threw: ${(err as Error)?.message ?? String(err)}`);
  }
}
