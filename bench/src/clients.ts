import type { Frame } from '@parley/schemas';
import { ParleyClient, RoomsApi } from '@parley/sdk';
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
