import { RoomsApi } from '@parley/sdk';
import { afterAll, expect, it } from 'vitest';
import { startFederatedPair } from './support/federated-pair.js';
import { until } from './support/net.js';
import { startTestServer, type TestServer } from './support/server.js';
import { openStream } from './support/stream-client.js';

let a: TestServer;
let b: TestServer;
/** Counts each statement the server sends to Postgres from now on (by its text). */
function count(s: TestServer): Map<string, number> {
  const m = new Map<string, number>();
  (s.services as unknown as { db: { on: (e: string, f: (q: { sql: string }) => void) => void } }).db.on('query', (q) => {
    const k = q.sql.replace(/\$\d+/g, '?').replace(/\s+/g, ' ').slice(0, 160);
    m.set(k, (m.get(k) ?? 0) + 1);
  });
  return m;
}
const total = (m: Map<string, number>) => [...m.values()].reduce((x, y) => x + y, 0);
function show(m: Map<string, number>, n: number): void {
  for (const [k, v] of [...m].sort((x, y) => y[1] - x[1])) console.log(`  ${(v / n).toFixed(2)}  ${k}`);
}
afterAll(async () => {
  await b?.close();
  await a?.close();
});
// Database round trips are the cost that grows with traffic (bench/README.md "Where the CPU
// goes"): this pins the count per message sent by a participant's user into a room hosted on
// another server, on both servers, with streams open (counts, not timings: deterministic but
// for a background sweep now and then, hence the margin). Before the delivery engine read a
// batch's three kinds in one statement and stopped rewriting a destination that stays up, the
// host made 18.8 per send and the participant 15.5; before a batch's events, the room's new head
// and the stream's position lock became one statement, 14.6 and 14.3; before the stream notes and
// txn rows joined that statement and a room's state reads were reused while its head stays put,
// 12.6 and 13.4; before the host's outbox rows joined it too, 9.6 (host); before the delivery engine stopped reading the state of a destination it delivered to within the last second, 8.6 (host). QB_VERBOSE=1 prints every statement per send.
it("a participant's send costs at most 8.2 queries on the host and 10.6 on the sender's server", async () => {
  ({ a, b } = await startFederatedPair());
  const ac = a.client();
  await ac.register({ username: 'alice', password: 'alice password' });
  const alice = new RoomsApi(ac);
  const bc = b.client();
  await bc.register({ username: 'bob', password: 'bob password' });
  const bob = new RoomsApi(bc);
  const { room_id } = await alice.create({ visibility: 'public', name: 'Q' });
  await bob.join(room_id);
  const sa = openStream(a.url, ac.session?.access_token as string);
  const sb = openStream(b.url, bc.session?.access_token as string);
  await sa.ready;
  await sb.ready;
  for (let i = 0; i < 5; i++) await bob.sendText(room_id, `warm ${i}`);
  await new Promise((r) => setTimeout(r, 1500));
  const ma = count(a);
  const mb = count(b);
  const N = 50;
  for (let i = 0; i < N; i++) await bob.sendText(room_id, `m ${i}`);
  await until(async () => (await alice.messages(room_id, { limit: 1 })).chunk[0]?.content.body === `m ${N - 1}`);
  await new Promise((r) => setTimeout(r, 1500));
  const perSend = (m: Map<string, number>) => total(m) / N;
  for (const [name, m, budget] of [
    ['host', ma, 8.2],
    ["sender's server", mb, 10.6],
  ] as const) {
    console.log(`${name}: ${perSend(m).toFixed(2)} queries per send (budget ${budget})`);
    // Over budget: which statements, per send, to see what came back.
    if (process.env.QB_VERBOSE || perSend(m) > budget) show(m, N);
  }
  sa.close();
  sb.close();
  expect(perSend(ma)).toBeGreaterThan(5);
  expect(perSend(ma)).toBeLessThanOrEqual(8.2);
  expect(perSend(mb)).toBeGreaterThan(5);
  expect(perSend(mb)).toBeLessThanOrEqual(10.6);
});

// A send into a room of this server, with the sender's stream open: the txn and room lookup,
// then the room's transaction (begin, lock, one statement for event, txn row, head and stream
// note, commit). It was 11 before the stream note and txn row joined that statement and the
// room's auth state was reused between batches.
it('a local send costs at most 5.2 queries', async () => {
  const s = await startTestServer();
  try {
    const c = s.client();
    await c.register({ username: 'carol', password: 'carol password' });
    const rooms = new RoomsApi(c);
    const { room_id } = await rooms.create({ visibility: 'public', name: 'L' });
    const st = openStream(s.url, c.session?.access_token as string);
    await st.ready;
    for (let i = 0; i < 5; i++) await rooms.sendText(room_id, `warm ${i}`);
    await new Promise((r) => setTimeout(r, 500));
    const m = count(s);
    const N = 50;
    for (let i = 0; i < N; i++) await rooms.sendText(room_id, `l ${i}`);
    await new Promise((r) => setTimeout(r, 500));
    const perSend = total(m) / N;
    console.log(`local: ${perSend.toFixed(2)} queries per send (budget 5.2)`);
    if (process.env.QB_VERBOSE || perSend > 5.2) show(m, N);
    st.close();
    expect(perSend).toBeGreaterThanOrEqual(4);
    expect(perSend).toBeLessThanOrEqual(5.2);
  } finally {
    await s.close();
  }
});
