import type { KeyRing } from '@parley/federation/keys';
import type { RoomEvent, SeqRecord } from '@parley/schemas';
import type { SigningIdentity } from '../../services/room-log.js';
import type { FederationContext } from '../setup.js';

// What the host and the participants of a federated room both speak of.

export interface Entry {
  event: RoomEvent;
  record: SeqRecord;
  /**
   * What the host knows of an entry it serves out of order (snapshot, backfill): the history
   * visibility it was sequenced under and the redaction that stripped it. Not signed: the
   * host is trusted for these as it is for order.
   */
  meta?: { visibility?: string; redacted_by?: string | null };
}

/** JSON text to send as it is (the route writes it into the answer unparsed). */
export class RawJson {
  constructor(readonly text: string) {}
}

/** A remote join of a large room: current state up to `anchor`, then recent entries. */
export interface Snapshot {
  state: Entry[];
  anchor: Entry;
}

export const serverOf = (id: string) => id.slice(id.indexOf(':') + 1);

/** One event's answer in a batched submit. */
export type SubmitResult = { event_id: string; seq: number } | { error: { status: number; code: string; message: string } };

// Events per submit request (participant → host).
export const MAX_SUBMIT_BATCH = 100;

// A joining server gets the whole chain up to this many entries (larger rooms: state
// snapshots are the next step).
export const MAX_JOIN_ENTRIES = 20_000;
// A join response is buffered and parsed whole: a host may answer at most this much, and
// only a few first joins run at once (participant.ts), so a hostile or huge room costs a
// bounded amount of memory. A host sends a snapshot when the full chain would weigh over half.
export const MAX_JOIN_RESPONSE_BYTES = 32 * 1024 * 1024;

/** Other servers' keys from the key store, and our own signing key (we verify our own users' events too). */
export function keyRingFor(fed: FederationContext, identity: SigningIdentity): KeyRing {
  const remote = fed.keyStore.keyRing();
  return (server: string, keyId: string) =>
    server === identity.serverName && keyId === identity.keyId ? identity.publicKey : remote(server, keyId);
}
