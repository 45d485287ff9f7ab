import type { Frame, SendResponse } from '@parley/schemas';
import { ParleyApiError, ParleyClient, RoomsApi } from '@parley/sdk';
import WebSocket from 'ws';

export interface Member {
  client: ParleyClient;
  rooms: RoomsApi;
  token: string;
}

export async function register(url: string, name: string): Promise<Member> {
  const client = new ParleyClient({ baseUrl: url });
  await client.register({ username: name, password: `${name} bench password` });
  return { client, rooms: new RoomsApi(client), token: client.session?.access_token as string };
}

/** An identified stream socket; `onFrame` sees every frame. Resolves once `ready`. */
export function connectStream(url: string, token: string, onFrame?: (f: Frame) => void): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/api/v1/stream`, { perMessageDeflate: false });
    ws.on('error', reject);
    ws.on('message', (raw) => {
      const msg = JSON.parse(raw.toString());
      if (msg.op === 'hello') ws.send(JSON.stringify({ op: 'identify', token }));
      else if (msg.op === 'ready') resolve(ws);
      else if (msg.op === 'frame' && onFrame) onFrame(msg.frame as Frame);
    });
  });
}

/** Runs `work` for 0..count-1 with at most `concurrency` in flight. */
export async function pool(count: number, concurrency: number, work: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, count) }, async () => {
      while (next < count) await work(next++);
    }),
  );
}

/** How the benchmark's senders send: over their stream socket (default) or one HTTP PUT each (`PARLEY_BENCH_SEND=http`). */
export type SendVia = 'stream' | 'http';

export function sendVia(): SendVia {
  const v = process.env.PARLEY_BENCH_SEND ?? 'stream';
  if (v !== 'stream' && v !== 'http') throw new Error(`PARLEY_BENCH_SEND must be "stream" or "http", not ${JSON.stringify(v)}`);
  return v;
}

export interface TextSender {
  sendText(roomId: string, body: string): Promise<SendResponse>;
}

let txnCounter = 0;

/**
 * Sends over an identified stream socket (docs/protocol.md, `send`): each `send` message is
 * answered by `sent` or `send_error` with its `id`; a socket that closes fails the rest. Answers
 * rejected as the HTTP API client rejects (ParleyApiError with the status and code).
 */
export function streamSender(ws: WebSocket): TextSender {
  const pending = new Map<string, { resolve: (r: SendResponse) => void; reject: (e: Error) => void }>();
  let next = 0;
  ws.on('message', (raw: Buffer) => {
    // The server writes `op` first: frames (most messages here) are not parsed a second time.
    if (raw.length < 12 || (raw.toString('latin1', 0, 11) !== '{"op":"sent' && raw.toString('latin1', 0, 12) !== '{"op":"send_')) return;
    const msg = JSON.parse(raw.toString());
    const p = pending.get(msg.id);
    if (!p) return;
    pending.delete(msg.id);
    if (msg.op === 'sent') p.resolve({ event_id: msg.event_id, ...(msg.seq === undefined ? {} : { seq: msg.seq }) });
    else p.reject(new ParleyApiError({ status: msg.status, code: msg.error?.code, message: msg.error?.message, field: msg.error?.field }));
  });
  ws.on('close', (code) => {
    for (const p of pending.values()) p.reject(new Error(`stream socket closed (${code}) before the answer`));
    pending.clear();
  });
  return {
    sendText(roomId, body) {
      const id = String(++next);
      txnCounter += 1;
      const txnId = `bench.${process.pid}.${txnCounter}`;
      return new Promise((resolve, reject) => {
        if (ws.readyState !== WebSocket.OPEN) return reject(new Error('stream socket is not open'));
        pending.set(id, { resolve, reject });
        ws.send(
          JSON.stringify({ op: 'send', id, room_id: roomId, type: 'room.message', txn_id: txnId, content: { body, msgtype: 'text' } }),
        );
      });
    },
  };
}
