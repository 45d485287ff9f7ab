import { ParleyClient, RoomsApi } from '@parley/sdk';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createLogger } from '../src/logger.js';
import { type RunningHomeserver, startHomeserver } from '../src/server.js';
import { startTestServer, type TestServer } from './support/server.js';

// Two processes of one server (one database, same data directory and signing key). A
// client retrying a send through the other process races its first try: a group of sends
// writes its txn rows with its events in one statement and trusts the txn lookup made before
// the room lock, so the second process's row collides on commit; the sequencer then runs each
// send of that group again alone, checking the txn under the lock, and answers with the event
// the other process sequenced. Each txn names one event, whichever process answers.
let first: TestServer;
let second: RunningHomeserver;
beforeAll(async () => {
  first = await startTestServer();
  second = await startHomeserver(first.config, { log: createLogger('silent') });
});
afterAll(async () => {
  await second?.stop();
  await first?.close();
});

it('the same txn sent through two processes at once is one event, answered alike by both', async () => {
  const a = first.client();
  await a.register({ username: 'alice', password: 'alice password' });
  const viaFirst = new RoomsApi(a);
  const viaSecond = new RoomsApi(new ParleyClient({ baseUrl: second.url, session: a.session }));
  const { room_id } = await viaFirst.create({ visibility: 'public', name: 'race' });
  const N = 40;
  const answers = await Promise.all(
    Array.from({ length: N }, (_, i) =>
      Promise.all([viaFirst.sendText(room_id, `m ${i}`, `t${i}`), viaSecond.sendText(room_id, `m ${i}`, `t${i}`)]),
    ),
  );
  for (const [x, y] of answers) expect(y.event_id).toBe(x.event_id);
  const bodies: string[] = [];
  let from: string | undefined;
  for (;;) {
    const page = await viaFirst.messages(room_id, { limit: 100, ...(from ? { from } : {}) });
    for (const e of page.chunk) if (e.type === 'room.message') bodies.push(e.content.body as string);
    if (!page.end) break;
    from = page.end;
  }
  expect(bodies).toHaveLength(N);
  expect(new Set(bodies).size).toBe(N);
});

// A process remembers what a room's last batch read of its state (senders' auth state, member
// servers) for as long as the room's head is where that batch left it. A ban sequenced by the
// other process moves the head: the first process must read the state again, not let the
// banned user's next send through.
it('a ban sequenced by the other process refuses the next send through this one', async () => {
  const a = first.client();
  await a.register({ username: 'owner', password: 'owner password' });
  const b = first.client();
  await b.register({ username: 'bob', password: 'bob password' });
  const owner = new RoomsApi(new ParleyClient({ baseUrl: second.url, session: a.session }));
  const bob = new RoomsApi(b);
  const { room_id } = await owner.create({ visibility: 'public', name: 'ban' });
  await bob.join(room_id);
  for (let i = 0; i < 3; i++) await bob.sendText(room_id, `before ${i}`);
  await owner.ban(room_id, '@bob:hs1.test');
  await expect(bob.sendText(room_id, 'after the ban')).rejects.toMatchObject({ status: 403 });
});
