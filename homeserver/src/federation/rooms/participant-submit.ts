import { eventId as computeEventId } from '@parley/federation/events';
import type { RoomEvent } from '@parley/schemas';
import { forbidden, notFound, ParleyError } from '../../errors.js';
import { MAX_SUBMIT_BATCH, serverOf } from './common.js';
import type { ParticipantDeps } from './participant-checks.js';

// Our users' events of rooms hosted elsewhere, on their way to the host (participant.ts).

/** A 4xx from the host (other than timeouts and rate limits) is its final word on an event. */
function isRefusal(err: unknown): boolean {
  const status = (err as { status?: number }).status;
  return typeof status === 'number' && status >= 400 && status < 500 && status !== 408 && status !== 429;
}

type SubmitOutcome =
  | { kind: 'sequenced'; event_id: string; seq: number; arrived?: Promise<void> }
  | { kind: 'queued'; event_id: string }
  | { kind: 'refused'; status: number; message: string; code?: string };

interface SubmitLane {
  queue: Array<{ event: RoomEvent; resolve: (outcome: SubmitOutcome) => void }>;
  running: boolean;
}

function outcomeOf(raw: unknown, host: string): SubmitOutcome {
  const r = raw as { event_id?: unknown; seq?: unknown; error?: { status?: unknown; message?: unknown } };
  if (typeof r?.event_id === 'string' && Number.isSafeInteger(r.seq))
    return { kind: 'sequenced', event_id: r.event_id, seq: r.seq as number };
  const status = typeof r?.error?.status === 'number' && r.error.status >= 400 && r.error.status < 500 ? r.error.status : 400;
  const message = typeof r?.error?.message === 'string' ? r.error.message.slice(0, 500) : `${host} refused the event`;
  const code = (r?.error as { code?: unknown } | undefined)?.code;
  // E2E refusals the client acts on (retry in the new epoch, encrypt) keep their code.
  if (code === 'PARLEY_MLS_STALE_EPOCH' || code === 'PARLEY_ROOM_ENCRYPTED') return { kind: 'refused', status, message, code };
  return { kind: 'refused', status, message };
}

function refusalMessage(err: unknown): string | undefined {
  return (err as { body?: { error?: { message?: string } } }).body?.error?.message;
}
// How long a participant's answer to a submit waits for the host's fan-out to bring it back.
const ARRIVAL_WAIT_MS = 2_000;
// How long a submitted event's waiter waits for the host's copy before the database is asked.
const ARRIVAL_CHECK_MS = 20;

/** Submits to hosts: one ordered lane per room, batched, queued in the outbox while a host is away. */
export class SubmitLanes {
  constructor(private readonly d: ParticipantDeps) {}

  /**
   * Sends an event of a remote room to its host for sequencing; answers with its seq. When
   * the host cannot be reached (or earlier events for it are still queued, to keep their
   * order) the event waits in the outbox as a `submit` row and the answer says `queued`.
   */
  /**
   * `onQueued` is called once the event has its place in the room's line (the submit lane or
   * the outbox), so a caller can let the next send of the same device in behind it.
   */
  async submit(roomId: string, event: RoomEvent, onQueued?: () => void): Promise<{ event_id: string; seq?: number; queued?: boolean }> {
    const host = serverOf(roomId);
    // Behind a running lane the lane itself keeps the order (each batch is sent, or queued in
    // the outbox in order once the host stops answering): no outbox read per send then.
    const behindLane = this.lanes.get(roomId)?.running === true;
    if (!behindLane && (await this.d.outbox.hasPending(host, 'submit'))) {
      const queued = await this.queueSubmit(host, event);
      onQueued?.();
      return queued;
    }
    const outcome = await new Promise<SubmitOutcome>((resolve) => {
      const lane = this.lanes.get(roomId) ?? { queue: [], running: false };
      this.lanes.set(roomId, lane);
      lane.queue.push({ event, resolve });
      onQueued?.();
      if (!lane.running) void this.drainLane(roomId, lane);
    });
    if (outcome.kind === 'queued') return { event_id: outcome.event_id, queued: true };
    if (outcome.kind === 'refused') {
      const { status, message } = outcome;
      if (outcome.code === 'PARLEY_MLS_STALE_EPOCH' || outcome.code === 'PARLEY_ROOM_ENCRYPTED')
        throw new ParleyError(status, outcome.code, message, { field: outcome.code === 'PARLEY_MLS_STALE_EPOCH' ? 'epoch' : 'type' });
      if (status === 403) throw forbidden(message);
      if (status === 404) throw notFound(message);
      if (status >= 500) throw new ParleyError(503, 'PARLEY_UNAVAILABLE', message);
      throw new ParleyError(400, 'PARLEY_INVALID_PARAM', `${host} refused the event: ${message}`);
    }
    await outcome.arrived;
    return { event_id: outcome.event_id, seq: outcome.seq };
  }

  /**
   * Submits to one room travel in order, as batches of up to MAX_SUBMIT_BATCH: while one
   * request is in flight the next sends gather behind it (group submit), so a busy room costs
   * one round trip per batch instead of one per event. If the host cannot be reached, the
   * batch and everything behind it are queued in the outbox, in order.
   */
  private async drainLane(roomId: string, lane: SubmitLane): Promise<void> {
    lane.running = true;
    const host = serverOf(roomId);
    try {
      let unreachable = false;
      while (lane.queue.length > 0) {
        const batch = lane.queue.splice(0, MAX_SUBMIT_BATCH);
        if (!unreachable) {
          try {
            const res = await this.d.fed.client.request({
              destination: host,
              method: 'POST',
              path: `/federation/v1/rooms/${encodeURIComponent(roomId)}/submit`,
              body: { events: batch.map((b) => b.event) },
              maxBytes: 1024 * 1024,
            });
            const results = (res.body as { results?: unknown })?.results;
            if (!Array.isArray(results) || results.length !== batch.length)
              throw new Error(`${host} answered a submit with a malformed body`);
            const outcomes = batch.map((_, i) => outcomeOf(results[i], host));
            const waits = this.waitForArrivals(outcomes.flatMap((o) => (o.kind === 'sequenced' ? [o.event_id] : [])));
            for (const [i, b] of batch.entries()) {
              const o = outcomes[i] as SubmitOutcome;
              b.resolve(o.kind === 'sequenced' ? { ...o, arrived: waits.get(o.event_id) } : o);
            }
            continue;
          } catch (err) {
            if (isRefusal(err)) {
              const message = refusalMessage(err) ?? `${host} refused the events`;
              for (const b of batch) b.resolve({ kind: 'refused', status: (err as { status: number }).status, message });
              continue;
            }
            unreachable = true;
            this.d.logger.info({ room_id: roomId, host, err: (err as Error).message }, 'room host unreachable; events queued');
          }
        }
        for (const b of batch) {
          try {
            b.resolve({ kind: 'queued', event_id: (await this.queueSubmit(host, b.event)).event_id });
          } catch (err) {
            b.resolve({ kind: 'refused', status: 500, message: `could not queue the event: ${(err as Error).message}` });
          }
        }
      }
    } catch (err) {
      for (const b of lane.queue.splice(0)) b.resolve({ kind: 'refused', status: 500, message: (err as Error).message });
      this.d.logger.error({ room_id: roomId, err: (err as Error).message }, 'submit lane failed');
    } finally {
      lane.running = false;
      if (lane.queue.length === 0) this.lanes.delete(roomId);
      else void this.drainLane(roomId, lane);
    }
  }

  private readonly lanes = new Map<string, SubmitLane>();

  /**
   * Waits (briefly) until the host's fan-out has brought submitted events back, so a client
   * answered with its seq can read it here at once; answers anyway after ARRIVAL_WAIT_MS. The
   * waits are set up before one read checks which of the batch are here already (an event
   * arriving in between wakes its waiter), instead of one read per event.
   */
  private waitForArrivals(eventIds: string[]): Map<string, Promise<void>> {
    const waits = new Map<string, Promise<void>>();
    const wakes = new Map<string, () => void>();
    for (const id of eventIds) {
      if (waits.has(id)) continue;
      let wake = () => {};
      const arrived = new Promise<void>((resolve) => {
        wake = resolve;
      });
      const list = this.arrivals.get(id) ?? [];
      list.push(wake);
      this.arrivals.set(id, list);
      wakes.set(id, wake);
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, ARRIVAL_WAIT_MS);
      });
      const done = Promise.race([arrived, timeout]).finally(() => {
        clearTimeout(timer);
        const rest = (this.arrivals.get(id) ?? []).filter((w) => w !== wake);
        if (rest.length > 0) this.arrivals.set(id, rest);
        else this.arrivals.delete(id);
      });
      waits.set(id, done);
    }
    if (wakes.size > 0) {
      // The host's copy usually comes back within milliseconds and wakes its waiter: only the
      // ones still waiting after ARRIVAL_CHECK_MS (it came before the wait was set up, or went
      // to another process of this server) are looked up, in one read.
      const check = setTimeout(() => {
        const still = [...wakes.keys()].filter((id) => this.arrivals.get(id)?.includes(wakes.get(id) as () => void));
        if (still.length === 0) return;
        this.d.events.findMany(still).then(
          (rows) => {
            for (const row of rows) wakes.get(row.event_id)?.();
          },
          // Unreadable now: each waits for its arrival or the timeout.
          (err) => this.d.logger.warn({ err: (err as Error).message }, 'arrival check failed'),
        );
      }, ARRIVAL_CHECK_MS);
      check.unref();
    }
    return waits;
  }

  private readonly arrivals = new Map<string, Array<() => void>>();

  /** Wakes the submits waiting for these events (the host's fan-out brought them back). */
  arrived(eventIds: Iterable<string>): void {
    for (const id of eventIds) for (const wake of this.arrivals.get(id) ?? []) wake();
  }

  private async queueSubmit(host: string, event: RoomEvent): Promise<{ event_id: string; queued: true }> {
    await this.d.db.transaction((trx) => this.d.outbox.enqueue([host], 'submit', { event }, this.d.clock.now(), this.d.ttlMs, trx));
    this.d.notify([host]);
    return { event_id: computeEventId(event), queued: true };
  }

  /** Delivery of queued submits of one room (DeliveryEngine.submitter), in one request: per event null when sequenced, the reason when refused for good. */
  async deliverSubmits(host: string, payloads: Array<Record<string, unknown>>): Promise<Array<string | null>> {
    const events = payloads.map((p) => p.event as RoomEvent);
    const roomId = events[0]?.room_id ?? '';
    try {
      const res = await this.d.fed.client.request({
        destination: host,
        method: 'POST',
        path: `/federation/v1/rooms/${encodeURIComponent(roomId)}/submit`,
        body: { events },
        maxBytes: 1024 * 1024,
      });
      const results = (res.body as { results?: unknown })?.results;
      if (!Array.isArray(results) || results.length !== events.length) throw new Error(`${host} answered a submit with a malformed body`);
      return results.map((r) => {
        const outcome = outcomeOf(r, host);
        return outcome.kind === 'refused' ? outcome.message : null;
      });
    } catch (err) {
      if (isRefusal(err)) return events.map(() => refusalMessage(err) ?? `refused with ${(err as { status: number }).status}`);
      throw err;
    }
  }
}
