import { eventId as computeEventId, verifyEvent, verifyRecord } from '@parley/federation/events';
import { check, RoomEvent as RoomEventSchema, SeqRecord as SeqRecordSchema } from '@parley/schemas';
import { ParleyError } from '../../errors.js';
import type { RoomRow } from '../../repositories/rooms.js';
import { BACKFILL_PAGE, BackfillBudget, RoomBackfillGate, TRANSACTION_BACKFILL } from '../backfill-limits.js';
import { type Entry, serverOf } from './common.js';
import { type EntryChecks, type ParticipantDeps, parseEntries } from './participant-checks.js';

// Entries a host pushes to us: verified, applied in order (runs of one room in one
// transaction), gaps backfilled within a budget; invites to rooms we are not in (participant.ts).

export class PushedEntries {
  constructor(
    private readonly d: ParticipantDeps,
    private readonly checks: EntryChecks,
    /** Wakes local submits waiting for these events to come back from the host. */
    private readonly arrived: (eventIds: Iterable<string>) => void,
  ) {}

  /**
   * An invite for one of our users to a room we do not take part in: both signatures are
   * checked, then it is kept (and shown on the user's stream) until they join or decline.
   */
  private async receiveInvite(origin: string, entry: Entry): Promise<string | null> {
    const { event, record } = entry;
    const invitee = event.state_key ?? '';
    if (serverOf(record.room_id) !== origin) return `${origin} is not the host of ${record.room_id}`;
    await this.checks.prefetchKeys([entry], origin);
    const ring = this.checks.keyRing();
    const id = computeEventId(event);
    if (record.event_id !== id) return 'record names another event';
    const rec = verifyRecord(record, origin, ring);
    if (!rec.ok) return `record: ${rec.reason}`;
    const ev = verifyEvent(event, ring, { allowRedacted: false });
    if (!ev.ok) return `event: ${ev.reason}`;
    await this.d.invites.put({
      room_id: record.room_id,
      user_id: invitee,
      inviter: event.sender,
      event: event as unknown as Record<string, unknown>,
      created_ts: this.d.clock.now(),
    });
    const clientEvent = {
      event_id: id,
      room_id: record.room_id,
      seq: record.seq,
      type: event.type,
      state_key: invitee,
      sender: event.sender,
      origin_ts: event.origin_ts,
      content: event.content,
    };
    await this.d.writer.writeNow(this.d.db, [
      {
        kind: 'event',
        room_id: null,
        private: false,
        user_id: invitee,
        device_id: null,
        room_ids: null,
        data: { event_id: id, event: clientEvent },
      },
    ]);
    return null;
  }

  /** Entries the host pushed (PUT send): applied in order; a gap is backfilled first, within `budget`. */
  async receive(origin: string, raw: unknown, budget = this.transactionBudget()): Promise<string | null> {
    const parsed = check(RoomEventSchema, (raw as Entry)?.event).ok && check(SeqRecordSchema, (raw as Entry)?.record).ok;
    if (!parsed) return 'not an event with its sequencing record';
    const { event, record } = raw as Entry;
    const room = await this.d.rooms.find(record.room_id);
    if (!room) {
      const invitesOurs =
        event.type === 'room.member' &&
        event.content.membership === 'invite' &&
        serverOf(event.state_key ?? '') === this.d.identity.serverName;
      return invitesOurs ? this.receiveInvite(origin, { event, record }) : `this server is not in ${record.room_id}`;
    }
    if (room.host !== origin) return `${origin} is not the host of ${record.room_id}`;
    if (record.seq <= room.current_seq) return null; // already have it (at-least-once delivery)
    if (record.seq > room.current_seq + 1) {
      const problem =
        (await this.checks.verifyPushed(room.room_id, origin, { event, record })) ??
        (await this.backfill(room.room_id, origin, record.seq - 1, budget));
      if (problem) return problem;
    }
    return this.applyOne(room.room_id, origin, { event, record });
  }

  /**
   * The entries of one pushed transaction, in order: runs of consecutive entries for one room
   * are verified and then applied in one database transaction (group apply); anything else
   * goes through receive(). Answers one problem (or null) per entry.
   */
  async receiveMany(origin: string, raws: unknown[]): Promise<Array<string | null>> {
    const results: Array<string | null> = raws.map(() => null);
    // One allowance for the whole transaction: its cost is bounded whatever its entries say.
    const budget = this.transactionBudget();
    const isEntry = (raw: unknown) => check(RoomEventSchema, (raw as Entry)?.event).ok && check(SeqRecordSchema, (raw as Entry)?.record).ok;
    for (let i = 0; i < raws.length; ) {
      // Past its time, the rest of a transaction is answered unread rather than making the sender time out.
      if (budget.timeLeft() <= 0) {
        for (let k = i; k < raws.length; k++) results[k] = 'not processed: this transaction used its time';
        break;
      }
      const first = raws[i] as Entry;
      const room = isEntry(first) ? await this.d.rooms.find(first.record.room_id) : undefined;
      if (!room || room.host !== origin) {
        results[i] = await this.receive(origin, first, budget);
        i++;
        continue;
      }
      let j = i + 1;
      while (j < raws.length && j - i < 100 && isEntry(raws[j]) && (raws[j] as Entry).record.room_id === room.room_id) j++;
      const run = raws.slice(i, j) as Entry[];
      const head = run[0] as Entry;
      if (head.record.seq > room.current_seq + 1) {
        // A gap: act on it only for an entry that verifies, and only within the budget.
        const unverified = await this.checks.verifyPushed(room.room_id, origin, head);
        if (unverified) {
          results[i] = unverified;
          i++;
          continue;
        }
        const missing = await this.backfill(room.room_id, origin, head.record.seq - 1, budget);
        if (missing) {
          for (let k = i; k < j; k++) results[k] = missing;
          i = j;
          continue;
        }
      }
      const problems = await this.applyRun(room.room_id, origin, run);
      problems.forEach((p, k) => {
        results[i + k] = p;
      });
      i = j;
    }
    return results;
  }

  /** Verifies a run of entries of one room and applies the longest valid prefix in one transaction; the rest one by one. */
  private async applyRun(roomId: string, host: string, run: Entry[], allowRedacted = false): Promise<Array<string | null>> {
    if (run.length === 1) return [await this.applyOne(roomId, host, run[0] as Entry, allowRedacted)];
    await this.checks.prefetchKeys(run, host);
    const ring = this.checks.keyRing();
    const verified: Array<{ entry: Entry; id: string }> = [];
    for (const entry of run) {
      // verifyEvent derives the event ID from the bytes it checks: the record must name it.
      const ev = this.checks.verifyEvent(entry.event, ring, allowRedacted);
      if (!ev.ok || entry.record.event_id !== ev.eventId || !verifyRecord(entry.record, host, ring).ok) break;
      verified.push({ entry, id: ev.eventId });
    }
    const applied: string[] = [];
    await this.d.db.transaction(async (trx) => {
      const room = (await this.d.rooms.lock(roomId, trx)) as RoomRow;
      // Message rows of the run go in one INSERT (flushed before a redaction reads its target).
      const batch = this.d.log.begin(room, { deferInserts: true });
      for (const { entry, id } of verified) {
        if (entry.record.seq <= room.current_seq) {
          applied.push(id);
          continue;
        }
        if (entry.record.seq !== room.current_seq + 1 || entry.record.prev !== room.head_hash) break;
        let redactedSender: string | undefined;
        if (entry.event.type === 'room.redaction' && typeof entry.event.content.redacts === 'string') {
          await this.d.log.flush(batch, trx);
          redactedSender = (await this.d.events.find(entry.event.content.redacts, trx))?.sender;
        }
        try {
          await this.d.log.applyRemote(room, entry.event, id, entry.record, trx, batch, redactedSender);
        } catch (err) {
          if (err instanceof ParleyError) break; // refused by the rules (nothing written): judged alone below
          throw err;
        }
        applied.push(id);
      }
      await this.d.log.finish(batch, trx);
    });
    this.arrived(applied);
    const results: Array<string | null> = run.map(() => null);
    for (let k = applied.length; k < run.length; k++) results[k] = await this.applyOne(roomId, host, run[k] as Entry, allowRedacted);
    return results;
  }

  /**
   * Pushed entries come whole; backfilled ones may come redacted (a redaction, or history its
   * server's users may not see): the event ID is over the redacted form, so they still verify.
   */
  private async applyOne(roomId: string, host: string, entry: Entry, allowRedacted = false): Promise<string | null> {
    const problem = await this.checks.verifyPushed(roomId, host, entry, allowRedacted);
    if (problem) return problem;
    const id = entry.record.event_id;
    try {
      await this.d.db.transaction(async (trx) => {
        const room = (await this.d.rooms.lock(roomId, trx)) as RoomRow;
        if (entry.record.seq <= room.current_seq) return;
        if (entry.record.seq !== room.current_seq + 1 || entry.record.prev !== room.head_hash) {
          throw new ParleyError(409, 'PARLEY_INVALID_PARAM', `seq ${entry.record.seq} does not follow ${room.current_seq} (prev mismatch)`);
        }
        const batch = this.d.log.begin(room, { deferInserts: true });
        let redactedSender: string | undefined;
        if (entry.event.type === 'room.redaction' && typeof entry.event.content.redacts === 'string') {
          redactedSender = (await this.d.events.find(entry.event.content.redacts, trx))?.sender;
        }
        await this.d.log.applyRemote(room, entry.event, id, entry.record, trx, batch, redactedSender);
        await this.d.log.finish(batch, trx);
      });
      this.arrived([id]);
      return null;
    } catch (err) {
      if (err instanceof ParleyError) return err.message;
      throw err;
    }
  }

  private transactionBudget(): BackfillBudget {
    return new BackfillBudget(TRANSACTION_BACKFILL, () => this.d.clock.now());
  }

  private readonly backfillGate = new RoomBackfillGate(() => this.d.clock.now());

  /**
   * Fetches the entries after our head up to `upTo` from the host, page by page. Every page
   * must continue exactly at our next seq and every entry must verify and apply, or the
   * backfill stops (and the room's backfill pauses); pages, bytes and time come out of
   * `budget`, and out of the room's own rate. Answers null when the gap is filled, else why not.
   */
  private async backfill(roomId: string, host: string, upTo: number, budget: BackfillBudget): Promise<string | null> {
    const busy = this.backfillGate.enter(roomId);
    if (busy) return `backfill from ${host} not attempted: ${busy}`;
    let failed = false;
    const fail = (why: string) => {
      failed = true;
      this.d.logger.warn({ room_id: roomId, host, reason: why }, 'backfill refused');
      return `backfill from ${host} failed: ${why}`;
    };
    try {
      for (;;) {
        const room = (await this.d.rooms.find(roomId)) as RoomRow;
        const from = room.current_seq + 1;
        if (from > upTo) return null;
        const spent = budget.spent() ?? (this.backfillGate.takePage(roomId) ? null : 'this room used its backfill rate');
        if (spent) return `backfill from ${host} stopped at seq ${from} (entries up to ${upTo} missing): ${spent}`;
        const limit = Math.min(BACKFILL_PAGE, upTo - from + 1);
        const { maxBytes, timeoutMs } = budget.takePage();
        let res: { body: unknown; headers: Record<string, string | string[] | undefined> };
        try {
          res = await this.d.fed.client.request({
            destination: host,
            method: 'GET',
            path: `/federation/v1/rooms/${encodeURIComponent(roomId)}/events?from_seq=${from}&limit=${limit}`,
            maxBytes,
            timeoutMs,
          });
        } catch (err) {
          return fail(`page at seq ${from}: ${(err as Error).message}`);
        }
        const declared = Number(res.headers['content-length']);
        budget.charge(Number.isFinite(declared) ? declared : maxBytes);
        const raw = (res.body as { entries?: unknown })?.entries;
        if (!Array.isArray(raw) || raw.length === 0) return fail(`the host answered no entries from seq ${from}`);
        if (raw.length > limit) return fail(`the host answered ${raw.length} entries for a page of ${limit}`);
        let entries: Entry[];
        try {
          entries = parseEntries(raw);
        } catch (err) {
          return fail((err as Error).message);
        }
        // Progress on every page: exactly the next entries, in order, or nothing is taken.
        const off = entries.findIndex((e, k) => e.record.seq !== from + k);
        if (off >= 0) return fail(`asked from seq ${from}, the page has seq ${(entries[off] as Entry).record.seq} at position ${off}`);
        const problems = await this.applyRun(roomId, host, entries, true);
        const bad = problems.findIndex((p) => p !== null);
        if (bad >= 0) return fail(`seq ${from + bad}: ${problems[bad]}`);
      }
    } finally {
      this.backfillGate.leave(roomId, failed);
    }
  }
}
