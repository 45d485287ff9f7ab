import type { Db } from '../db/database.js';
import { notFound, ParleyError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { RoomRepository, RoomRow } from '../repositories/rooms.js';
import type { AppendBatch, RoomLog } from './room-log.js';

/**
 * One send's part of a group. `careful` is set when the send runs again alone after its group
 * failed to commit (e.g. its txn row collided with one another process wrote meanwhile): it
 * should then check under the lock what the group's first try took for granted.
 */
export type SequencedWork<T> = (trx: Db, room: RoomRow, batch: AppendBatch, careful: boolean) => Promise<T>;

interface Job {
  work: SequencedWork<unknown>;
  resolve(value: unknown): void;
  reject(err: unknown): void;
}

const MAX_BATCH = 100;

/**
 * Group commit for one room's sends: while a transaction for a room is running, further
 * sends to it queue up and then go through together in the next transaction — one lock,
 * one room update and one stream write for the whole group. A send refused by the rules
 * fails alone; an unexpected database error makes the group retry one send at a time, so
 * one bad send never sinks the others.
 */
export class RoomSequencer {
  private readonly queues = new Map<string, Job[]>();

  constructor(
    private readonly db: Db,
    private readonly rooms: RoomRepository,
    private readonly log: RoomLog,
    private readonly logger: Logger,
  ) {}

  submit<T>(roomId: string, work: SequencedWork<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const queue = this.queues.get(roomId);
      const job: Job = { work, resolve: resolve as (v: unknown) => void, reject };
      if (queue) {
        queue.push(job);
        return;
      }
      this.queues.set(roomId, [job]);
      void this.drain(roomId);
    });
  }

  private async drain(roomId: string): Promise<void> {
    const queue = this.queues.get(roomId) as Job[];
    while (queue.length > 0) {
      const jobs = queue.splice(0, MAX_BATCH);
      await this.runGroup(roomId, jobs);
    }
    this.queues.delete(roomId);
  }

  private async runGroup(roomId: string, jobs: Job[], careful = false): Promise<void> {
    const outcomes: Array<{ ok: true; value: unknown } | { ok: false; err: unknown }> = [];
    try {
      await this.db.transaction(async (trx) => {
        outcomes.length = 0;
        const room = await this.rooms.lock(roomId, trx);
        if (!room) throw notFound(`no room ${roomId} on this server`);
        // Message events wait and go in with the room's new head in one statement (`finish`);
        // work that reads events of the room calls `log.flush` first.
        const batch = this.log.begin(room, { deferInserts: true });
        for (const job of jobs) {
          try {
            outcomes.push({ ok: true, value: await job.work(trx, room, batch, careful) });
          } catch (err) {
            // Rule refusals happen before any write of that send: the transaction is intact.
            if (!(err instanceof ParleyError)) throw err;
            outcomes.push({ ok: false, err });
          }
        }
        await this.log.finish(batch, trx);
      });
    } catch (err) {
      if (careful) {
        jobs[0]?.reject(err);
      } else {
        if (jobs.length > 1)
          this.logger.warn({ err: (err as Error).message, sends: jobs.length }, 'group send failed; retrying one by one');
        for (const job of jobs) await this.runGroup(roomId, [job], true);
      }
      return;
    }
    jobs.forEach((job, i) => {
      const outcome = outcomes[i];
      if (outcome?.ok) job.resolve(outcome.value);
      else job.reject(outcome?.err);
    });
  }
}
