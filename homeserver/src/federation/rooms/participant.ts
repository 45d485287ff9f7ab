import { signEvent } from '@parley/federation/events';
import type { RoomEvent } from '@parley/schemas';
import { ParleyError } from '../../errors.js';
import { EntryChecks, type ParticipantDeps } from './participant-checks.js';
import { RemoteJoins } from './participant-join.js';
import { PushedEntries } from './participant-receive.js';
import { SubmitLanes } from './participant-submit.js';

/**
 * The participant side of a federated room (docs/protocol.md): the host is trusted for order and
 * nothing else. Every entry is verified (origin and host signatures, content hash, seq,
 * `prev`, auth rules) before it is stored; joins, snapshots and backfill are verified the same
 * way, and every exchange the host drives is bounded (backfill-limits.ts). Our users' events
 * go to the host for sequencing, in order, queued while it is down.
 */
// Its parts: participant-checks.ts (verification), participant-submit.ts (our events to the
// host), participant-join.ts (joins, older history), participant-receive.ts (pushed entries).
export class ParticipantRooms {
  private readonly checks: EntryChecks;
  /** Our users' events on their way to hosts (submit, deliverSubmits). */
  readonly submits: SubmitLanes;
  /** Joins and older history (join, backfillOlder). */
  readonly joins: RemoteJoins;
  /** Entries hosts push to us (receive, receiveMany). */
  readonly pushed: PushedEntries;

  constructor(private readonly d: ParticipantDeps) {
    const checks = new EntryChecks(this.d);
    this.checks = checks;
    this.submits = new SubmitLanes(this.d);
    this.joins = new RemoteJoins(this.d, checks, this.submits, (...args) => this.signForRemote(...args));
    this.pushed = new PushedEntries(this.d, checks, (ids) => this.submits.arrived(ids));
  }

  async forgetInvite(roomId: string, userId: string): Promise<void> {
    await this.d.invites.delete(roomId, userId);
  }

  /** Whether `userId` holds a pending invite to `roomId` (a room this server is not in). */
  async hasInvite(roomId: string, userId: string): Promise<boolean> {
    return (await this.d.invites.find(roomId, userId)) !== undefined;
  }

  /** Signs an event as this server (the origin) for a room hosted elsewhere. */
  signForRemote(
    roomId: string,
    type: string,
    sender: string,
    content: Record<string, unknown>,
    stateKey?: string,
  ): { event: RoomEvent; eventId: string } {
    try {
      const signed = signEvent(
        {
          room_id: roomId,
          type,
          ...(stateKey !== undefined ? { state_key: stateKey } : {}),
          sender,
          origin: this.d.identity.serverName,
          origin_ts: this.d.clock.now(),
          lamport: 0,
          content,
        },
        this.d.identity.serverName,
        this.d.identity,
      );
      // It comes back from the host sequenced: its signature need not be checked then.
      this.checks.trusted.add(signed.eventId);
      return signed;
    } catch (err) {
      throw new ParleyError(400, 'PARLEY_INVALID_PARAM', (err as Error).message, { field: 'content' });
    }
  }
}
