import { RoomsApi } from '@parley/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from './support/server.js';

describe('search', () => {
  let server: TestServer;
  let alice: RoomsApi;
  let bob: RoomsApi;
  let eve: RoomsApi;
  let shared: string;
  let secret: string;

  beforeAll(async () => {
    server = await startTestServer();
    const make = async (name: string) => {
      const c = server.client();
      await c.register({ username: name, password: `${name} password` });
      return new RoomsApi(c);
    };
    alice = await make('alice');
    bob = await make('bob');
    eve = await make('eve');
    ({ room_id: shared } = await alice.create({ visibility: 'private', name: 'Shared', invite: ['@bob:hs1.test'] }));
    await bob.join(shared);
    ({ room_id: secret } = await alice.create({ visibility: 'private', name: 'Secret' }));
    await alice.sendText(shared, 'The zebra crossing is closed today');
    await alice.sendText(shared, 'zebra zebra zebra: stripes everywhere');
    await bob.sendText(shared, 'nothing about animals');
    await alice.sendText(secret, 'the zebra password is hunter2');
  });
  afterAll(() => server?.close());

  it('finds ranked matches in rooms the caller reads, and nothing from rooms they do not', async () => {
    const mine = await alice.search('zebra');
    expect(mine.results).toHaveLength(3);
    expect(mine.results[0]?.event.content.body).toBe('zebra zebra zebra: stripes everywhere');
    const bobs = await bob.search('zebra');
    expect(bobs.results.map((r) => r.event.room_id)).toEqual([shared, shared]);
    expect(JSON.stringify(bobs)).not.toContain('hunter2');
    expect((await eve.search('zebra')).results).toEqual([]);
    expect((await bob.search('zebra', { room_id: secret })).results).toEqual([]);
  });

  it('paginates', async () => {
    const first = await alice.search('zebra', { limit: 2 });
    expect(first.results).toHaveLength(2);
    expect(first.next).toBeDefined();
    const second = await alice.search('zebra', { limit: 2, next: first.next as string });
    expect(second.results).toHaveLength(1);
    expect(second.next).toBeUndefined();
  });

  it('stops finding a message once it is redacted, and after the reader leaves', async () => {
    const { event_id } = await bob.sendText(shared, 'ephemeral platypus');
    expect((await alice.search('platypus')).results).toHaveLength(1);
    await bob.redact(shared, event_id);
    expect((await alice.search('platypus')).results).toHaveLength(0);
    await bob.leave(shared);
    expect((await bob.search('zebra')).results).toEqual([]);
  });

  it('treats query syntax as text, never as an error', async () => {
    for (const q of ['"unterminated', 'a & | !', "'; drop table events; --", '(((', '-zebra', 'zebra OR crossing']) {
      const res = await alice.search(q);
      expect(Array.isArray(res.results)).toBe(true);
    }
  });
});
