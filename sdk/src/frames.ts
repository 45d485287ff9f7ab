import type { Frame, FrameKind } from '@parley/schemas';
import { rethrowLater } from './emitter.js';
import { framesToEmit, isPosition, positionAfterReady } from './positions.js';

export type FrameOf<K extends FrameKind> = Extract<Frame, { kind: K }>;
export type StreamTransport = 'websocket' | 'longpoll';

/** Everything a ParleyStream or SyncPoller emits. Per-kind events carry the whole frame. */
export interface StreamEvents {
  frame: Frame;
  event: FrameOf<'event'>;
  typing: FrameOf<'typing'>;
  receipt: FrameOf<'receipt'>;
  presence: FrameOf<'presence'>;
  profile: FrameOf<'profile'>;
  device_list: FrameOf<'device_list'>;
  to_device: FrameOf<'to_device'>;
  /** At the live edge. `reset`: the server did not replay exactly; refetch room state. */
  ready: { position: number; reset: boolean; transport: StreamTransport };
  connected: { transport: StreamTransport };
  /** `code`: the WebSocket close code, or for long-poll the HTTP status (0: no answer). */
  disconnected: { code: number; reason: string; willRetry: boolean };
  /** `attempt` counts from 1 since the last `ready`. */
  reconnecting: { attempt: number; delayMs: number };
  /** The session is dead (revoked, or refreshing it failed): the stream has stopped. */
  revoked: { reason: string };
}

type Emit = <K extends keyof StreamEvents>(type: K, payload: StreamEvents[K]) => void;

const KINDS: ReadonlySet<string> = new Set<FrameKind>(['event', 'typing', 'receipt', 'presence', 'profile', 'device_list', 'to_device']);

/**
 * A frame off the wire, or null when it is not one. Only the envelope is checked: the
 * payload is the server's business and checking it fully would put a schema validator in
 * every browser bundle.
 */
export function parseFrame(value: unknown): Frame | null {
  if (typeof value !== 'object' || value === null) return null;
  const { position, kind, data } = value as Record<string, unknown>;
  if (!isPosition(position) || typeof kind !== 'string') return null;
  if (typeof data !== 'object' || data === null) return null;
  return value as Frame;
}

/**
 * The position a stream has processed, and the de-duplicated delivery of frames to the
 * app. The transports (socket, long-poll) only decide where frames come from.
 */
export class FrameFeed {
  #position: number | null;
  readonly #emit: Emit;
  readonly #onPosition: ((position: number) => void) | undefined;

  constructor(since: number | null, emit: Emit, onPosition?: (position: number) => void) {
    this.#position = since;
    this.#emit = emit;
    this.#onPosition = onPosition;
  }

  get position(): number | null {
    return this.#position;
  }

  deliver(frames: readonly Frame[]): void {
    for (const frame of framesToEmit(this.#position, frames)) {
      this.#position = frame.position;
      // A kind newer than this SDK still moves the position, so a resume does not replay it forever.
      if (KINDS.has(frame.kind)) {
        this.#emit('frame', frame);
        this.#emit(frame.kind, frame as never);
      }
      // After the listeners ran: an app that persists this and then crashes sees the
      // frame again on resume rather than never (at-least-once).
      this.#notify();
    }
  }

  /** Applies a `ready` (or sync answer) and returns the position to report in `ready`. */
  ready(ready: { position: number; reset: boolean }): number {
    const next = positionAfterReady(this.#position, ready);
    if (next !== this.#position) {
      this.#position = next;
      this.#notify();
    }
    return next;
  }

  /** Forgets the position so the next connection starts without `since` (and gets a reset). */
  forget(): void {
    this.#position = null;
  }

  #notify(): void {
    if (this.#onPosition === undefined || this.#position === null) return;
    try {
      this.#onPosition(this.#position);
    } catch (err) {
      rethrowLater(err);
    }
  }
}
