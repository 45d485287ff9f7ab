import type { SyncResponse } from '@parley/schemas';
import { assertBackoffOptions, type BackoffOptions, backoffDelay, DEFAULT_BACKOFF } from './backoff.js';
import type { ParleyClient } from './client.js';
import { Emitter } from './emitter.js';
import { malformedResponse, ParleyApiError } from './errors.js';
import { FrameFeed, parseFrame, type StreamEvents } from './frames.js';
import { isPosition } from './positions.js';
import { assertClient, assertOptionalFunction, assertOptionalPosition } from './validate.js';

export interface SyncPollerOptions {
  client: ParleyClient;
  /** Last position processed earlier (persisted from `onPosition`); omit to start afresh. */
  since?: number;
  /** Called after each frame's listeners ran, and when `ready` moves the position. */
  onPosition?: (position: number) => void;
  backoff?: BackoffOptions;
  random?: () => number;
  /** How long the server may hold each request open, in ms. */
  timeoutMs?: number;
}

const DEFAULT_TIMEOUT_MS = 30_000;

/**
 * The long-poll twin of ParleyStream (`GET /api/v1/sync?since=&timeout=`), for networks
 * that break WebSockets. Same events; `ready` follows the first answer after a start or a
 * failure, and any answer with `reset`. Requests go through `client.request`, which
 * already refreshes an expiring token; a 401 that survives that means the session is dead.
 */
export class SyncPoller extends Emitter<StreamEvents> {
  readonly #client: ParleyClient;
  readonly #feed: FrameFeed;
  readonly #backoff: BackoffOptions;
  readonly #random: () => number;
  readonly #timeoutMs: number;
  #state: 'idle' | 'running' | 'closed' = 'idle';
  #attempt = 0;
  #online = false;
  #wake: (() => void) | null = null;
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(options: SyncPollerOptions) {
    super();
    if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
    this.#client = assertClient(options.client);
    this.#backoff = options.backoff === undefined ? DEFAULT_BACKOFF : assertBackoffOptions(options.backoff, 'options.backoff');
    this.#random = assertOptionalFunction(options.random, 'options.random') ?? Math.random;
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    if (!Number.isSafeInteger(this.#timeoutMs) || this.#timeoutMs < 0) {
      throw new RangeError('options.timeoutMs must be a non-negative integer');
    }
    const onPosition = assertOptionalFunction(options.onPosition, 'options.onPosition');
    this.#feed = new FrameFeed(assertOptionalPosition(options.since, 'options.since'), (t, p) => this.emit(t, p), onPosition);
  }

  /** The last position processed, or null before the first answer when started without `since`. */
  get position(): number | null {
    return this.#feed.position;
  }

  start(): this {
    if (this.#state === 'closed') throw new Error('a closed SyncPoller cannot be restarted');
    if (this.#state === 'idle') {
      this.#state = 'running';
      void this.#loop();
    }
    return this;
  }

  /** Stops for good. A request in flight is left to finish; its answer is ignored. */
  close(): void {
    const wasRunning = this.#state === 'running';
    this.#state = 'closed';
    clearTimeout(this.#timer);
    this.#wake?.();
    if (wasRunning) this.emit('disconnected', { code: 1000, reason: 'closed by client', willRetry: false });
  }

  async #loop(): Promise<void> {
    while (this.#state === 'running') {
      let answer: SyncResponse;
      try {
        answer = parseSyncResponse(await this.#client.request<unknown>('GET', this.#path()));
      } catch (err) {
        if (this.#state !== 'running') return;
        await this.#failed(err);
        continue;
      }
      if (this.#state !== 'running') return;
      this.#received(answer);
    }
  }

  #path(): string {
    const since = this.#feed.position;
    return `/api/v1/sync?${since === null ? '' : `since=${since}&`}timeout=${this.#timeoutMs}`;
  }

  #received(answer: SyncResponse): void {
    const first = !this.#online;
    if (first) {
      this.#online = true;
      this.#attempt = 0;
      this.emit('connected', { transport: 'longpoll' });
    }
    // A reset answer starts from the server's live edge, which may sit below a position
    // that came from elsewhere; its frames must not be dropped as already seen.
    if (answer.reset) this.#feed.forget();
    this.#feed.deliver(answer.frames);
    const position = this.#feed.ready({ position: answer.next, reset: answer.reset });
    if (first || answer.reset) this.emit('ready', { position, reset: answer.reset, transport: 'longpoll' });
  }

  async #failed(err: unknown): Promise<void> {
    const reason = err instanceof Error ? err.message : String(err);
    if (isDeadSession(err)) {
      this.#state = 'closed';
      this.emit('disconnected', { code: 401, reason, willRetry: false });
      this.emit('revoked', { reason });
      return;
    }
    this.#online = false;
    this.emit('disconnected', { code: err instanceof ParleyApiError ? err.status : 0, reason, willRetry: true });
    const delayMs = backoffDelay(this.#attempt, this.#backoff, this.#random);
    this.#attempt += 1;
    this.emit('reconnecting', { attempt: this.#attempt, delayMs });
    await new Promise<void>((resolve) => {
      this.#wake = resolve;
      this.#timer = setTimeout(resolve, delayMs);
    });
    this.#wake = null;
  }
}

/** A 401 after the client's own refresh-and-retry, or no session at all: nothing revives it. */
export function isDeadSession(err: unknown): boolean {
  return err instanceof ParleyApiError && (err.status === 401 || err.code === 'PARLEY_MISSING_TOKEN');
}

function parseSyncResponse(value: unknown): SyncResponse {
  if (typeof value !== 'object' || value === null) throw malformedResponse(200, 'sync answer is not an object');
  const { frames, next, reset } = value as Record<string, unknown>;
  if (!Array.isArray(frames)) throw malformedResponse(200, 'sync answer has no frames array');
  if (!isPosition(next)) throw malformedResponse(200, 'sync answer has no valid next position');
  if (typeof reset !== 'boolean') throw malformedResponse(200, 'sync answer has no reset flag');
  const parsed = frames.map(parseFrame);
  if (parsed.some((f) => f === null)) throw malformedResponse(200, 'sync answer has a malformed frame');
  return { frames: parsed as SyncResponse['frames'], next, reset };
}
