import type { Logger } from '../../logger.js';
import type { StatsRepository } from '../../repositories/admin/stats.js';
import type { OutboxRepository } from '../../repositories/outbox.js';
import type { Clock } from '../clock.js';

export const SAMPLE_EVERY_MS = 5 * 60_000;
// Opening the dashboard samples too, at most this often, so it shows the last minutes.
const ON_DEMAND_GAP_MS = 15_000;
const DAY_MS = 86_400_000;

/** Dashboard figures: a sample every few minutes into `stats_samples`, read back as series. */
export class StatsService {
  #timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly repo: StatsRepository,
    private readonly outbox: OutboxRepository,
    private readonly clock: Clock,
    private readonly log: Logger,
  ) {}

  start(): void {
    const tick = () =>
      this.repo
        .sample(this.clock.now(), SAMPLE_EVERY_MS - 1000)
        .catch((err) => this.log.warn({ err: (err as Error).message }, 'stats sample failed'));
    void tick();
    this.#timer ??= setInterval(tick, SAMPLE_EVERY_MS);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
  }

  async dashboard(days: number) {
    const now = this.clock.now();
    await this.repo.sample(now, ON_DEMAND_GAP_MS);
    const [daily, samples, destinations, current] = await Promise.all([
      this.repo.daily(now - (days - 1) * DAY_MS, now),
      this.repo.samplesSince(now - 7 * DAY_MS, 2016),
      this.outbox.overview(),
      this.repo.current(now),
    ]);
    // Today's active users are known live; the samples may be minutes old.
    const today = daily.at(-1);
    if (today) today.active_users = Math.max(today.active_users, current.active_today);
    return {
      now,
      daily,
      samples: samples.map((s) => ({
        ts: s.ts,
        queue_depth: s.queue_depth,
        up: s.destinations_up,
        backing_off: s.destinations_backing_off,
        down: s.destinations_down,
      })),
      totals: {
        users: current.users,
        active_today: current.active_today,
        queue_depth: current.queue_depth,
        destinations: destinations.length,
        destinations_down: destinations.filter((d) => d.state === 'down').length,
      },
    };
  }
}
