import { verifyChain } from '@parley/federation/chain';
import { recordHash, verifyRecord } from '@parley/federation/events';
import { authorize, type StateMap, stateKey } from '@parley/federation/room';
import type { RoomEvent } from '@parley/schemas';
import { serverMembershipLog, withheldFrom } from '../federation/server-visibility.js';
import type { EventRepository } from '../repositories/events.js';
import type { RoomRepository } from '../repositories/rooms.js';
import type { SigningIdentity } from './room-log.js';

export type VerifyReport =
  | { ok: true; room_id: string; events: number; head: string }
  | { ok: false; room_id: string; seq: number; event_id: string; kind: string; reason: string };

const BATCH = 2000;

/**
 * `parley room verify`: re-checks a stored room log end to end — every origin signature and
 * content hash, every host record signature, the `prev` chain and the auth rules replayed
 * over the events — and names the first broken event.
 */
export class RoomVerifier {
  constructor(
    private readonly rooms: RoomRepository,
    private readonly events: EventRepository,
    private readonly identity: SigningIdentity,
    /** Other servers' keys (federation's key store), for events they originated. */
    private readonly remoteKeys?: {
      prefetch(server: string): Promise<unknown>;
      keyRing(): (server: string, keyId: string) => import('node:crypto').KeyObject | undefined;
    },
  ) {}

  async verify(roomId: string): Promise<VerifyReport | null> {
    const room = await this.rooms.find(roomId);
    if (!room) return null;
    const entries: Array<{ event: RoomEvent; record: import('@parley/schemas').SeqRecord }> = [];
    // A participant holds in redacted form what none of its users could see (L7): which events
    // those are follows from its own users' memberships, so a stripped event is still caught.
    const withheld = new Set<string>();
    const ours =
      room.host === this.identity.serverName
        ? null
        : serverMembershipLog(await this.rooms.membershipLogOfServer(roomId, this.identity.serverName));
    // A room joined from a state snapshot is verified from its first complete entry on (the
    // anchor's signatures are checked as part of the chain below, the state before it is the
    // snapshot the host signed entry by entry).
    const floor = room.history_from ?? 1;
    for (let from = floor; from <= room.current_seq; from += BATCH) {
      for (const row of await this.events.range(roomId, from, Math.min(room.current_seq, from + BATCH - 1))) {
        entries.push({ event: row.event, record: row.record });
        if (ours && withheldFrom(ours, row.event, row.seq, row.visibility)) withheld.add(row.event_id);
      }
    }
    // An event may be stored in redacted form only if a redaction for it is in the log.
    const redactedEventIds = new Set<string>(withheld);
    for (const { event } of entries) {
      if (event.type === 'room.redaction' && typeof event.content.redacts === 'string') redactedEventIds.add(event.content.redacts);
    }
    const servers = new Set([room.host, ...entries.map((e) => e.event.origin)]);
    servers.delete(this.identity.serverName);
    if (this.remoteKeys) await Promise.all([...servers].map((server) => this.remoteKeys?.prefetch(server).catch(() => false)));
    const remote = this.remoteKeys?.keyRing();
    const keyRing = (server: string, keyId: string) =>
      server === this.identity.serverName && keyId === this.identity.keyId ? this.identity.publicKey : remote?.(server, keyId);
    let after: { seq: number; head: string; state: StateMap } | undefined;
    if (floor > 1) {
      const anchor = entries.shift();
      if (!anchor)
        return { ok: false, room_id: roomId, seq: floor, event_id: '(missing)', kind: 'malformed', reason: 'no entry at the snapshot' };
      const signed = verifyRecord(anchor.record, room.host, keyRing);
      if (!signed.ok)
        return {
          ok: false,
          room_id: roomId,
          seq: floor,
          event_id: anchor.record.event_id,
          kind: 'record_signature',
          reason: signed.reason,
        };
      const state: StateMap = new Map();
      for (const row of await this.events.stateBefore(roomId, floor + 1)) state.set(stateKey(row.type, row.state_key ?? ''), row.event);
      after = { seq: anchor.record.seq, head: recordHash(anchor.record), state };
    }
    const result = verifyChain(entries, keyRing, authorize, { redactedEventIds, ...(after ? { after } : {}) });
    if (result.ok) return { ok: true, room_id: roomId, events: result.count, head: result.head ?? '' };
    return {
      ok: false,
      room_id: roomId,
      seq: result.seq,
      event_id: result.event_id ?? '(unknown)',
      kind: result.kind,
      reason: result.reason,
    };
  }
}
