/**
 * Stream positions (schemas/src/stream.ts) only grow, and a resume replays from the `since`
 * the client sent, so replays can overlap what was already seen. These rules decide which
 * frames reach the app: at most once each, in position order.
 */

export function isPosition(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/**
 * The frames to emit after `last` (null: nothing emitted yet), in position order: anything
 * at or below `last`, and any repeat of a position, is dropped. The sort is stable, so a
 * batch already in order (every well-behaved server's) comes back unchanged.
 */
export function framesToEmit<F extends { position: number }>(last: number | null, frames: readonly F[]): F[] {
  const sorted = [...frames].sort((a, b) => a.position - b.position);
  const out: F[] = [];
  let high = last ?? -1;
  for (const frame of sorted) {
    if (frame.position <= high) continue;
    out.push(frame);
    high = frame.position;
  }
  return out;
}

/**
 * The position to resume from after the server's `ready` (or a sync answer). A reset means
 * the server started afresh from its live edge, so its position wins even when lower than
 * ours (ours came from elsewhere); otherwise positions never move backwards.
 */
export function positionAfterReady(last: number | null, ready: { position: number; reset: boolean }): number {
  if (ready.reset || last === null) return ready.position;
  return Math.max(last, ready.position);
}

/** `ws:`/`wss:` URL of the stream endpoint under a client's `http:`/`https:` base URL. */
export function streamUrl(baseUrl: string): string {
  const url = new URL(baseUrl);
  if (url.protocol === 'http:') url.protocol = 'ws:';
  else if (url.protocol === 'https:') url.protocol = 'wss:';
  else throw new TypeError(`baseUrl must be an http: or https: URL: ${baseUrl}`);
  url.pathname = `${url.pathname.replace(/\/+$/, '')}/api/v1/stream`;
  url.search = '';
  url.hash = '';
  return url.toString();
}
