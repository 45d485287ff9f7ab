import type { Frame } from '@parley/schemas';
import WebSocket from 'ws';

export interface TestStream {
  ws: WebSocket;
  frames: Frame[];
  messages: Array<Record<string, unknown>>;
  ready: Promise<{ position: number; reset: boolean }>;
  closed: Promise<{ code: number; reason: string }>;
  /** Resolves with the first frame (already received or future) matching `pred`. */
  waitFor(pred: (f: Frame) => boolean, timeoutMs?: number): Promise<Frame>;
  send(message: unknown): void;
  close(): void;
  lastPosition(): number;
}

/** A raw protocol client for tests: real WebSocket, no reconnect logic of its own. */
export function openStream(baseUrl: string, token: string | null, since?: number, headers?: Record<string, string>): TestStream {
  const ws = new WebSocket(`${baseUrl.replace(/^http/, 'ws')}/api/v1/stream`, { headers });
  const frames: Frame[] = [];
  const messages: Array<Record<string, unknown>> = [];
  const waiters: Array<{ pred: (f: Frame) => boolean; resolve: (f: Frame) => void }> = [];
  let resolveReady: (v: { position: number; reset: boolean }) => void = () => {};
  let rejectReady: (e: Error) => void = () => {};
  const ready = new Promise<{ position: number; reset: boolean }>((res, rej) => {
    resolveReady = res;
    rejectReady = rej;
  });
  ready.catch(() => {});
  const closed = new Promise<{ code: number; reason: string }>((resolve) => {
    ws.on('close', (code, reason) => {
      rejectReady(new Error(`closed ${code} ${reason}`));
      resolve({ code, reason: reason.toString() });
    });
  });
  ws.on('error', () => {});
  ws.on('message', (raw) => {
    const msg = JSON.parse(raw.toString()) as Record<string, unknown>;
    messages.push(msg);
    if (msg.op === 'hello' && token !== null)
      ws.send(JSON.stringify(since === undefined ? { op: 'identify', token } : { op: 'identify', token, since }));
    if (msg.op === 'ready') resolveReady({ position: msg.position as number, reset: msg.reset as boolean });
    if (msg.op === 'frame') {
      const frame = msg.frame as Frame;
      frames.push(frame);
      for (const w of [...waiters]) {
        if (w.pred(frame)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(frame);
        }
      }
    }
  });
  return {
    ws,
    frames,
    messages,
    ready,
    closed,
    waitFor(pred, timeoutMs = 10_000) {
      const found = frames.find(pred);
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`no matching frame within ${timeoutMs} ms; got ${JSON.stringify(frames.slice(-3))}`)),
          timeoutMs,
        );
        waiters.push({
          pred,
          resolve: (f) => {
            clearTimeout(timer);
            resolve(f);
          },
        });
      });
    },
    send: (message) => ws.send(typeof message === 'string' ? message : JSON.stringify(message)),
    close: () => ws.close(),
    lastPosition: () => frames.at(-1)?.position ?? 0,
  };
}

export function bodyOf(f: Frame): string | undefined {
  return f.kind === 'event' ? (f.data.event.content.body as string | undefined) : undefined;
}
