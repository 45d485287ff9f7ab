import { RoomsApi } from '@parley/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from './support/server.js';

// Issue 10, M4: the directory search must match only published rooms, and only literally.
describe('security: directory search', () => {
  let server: TestServer;
  let alice: RoomsApi;
  let mallory: RoomsApi;
  let published: string;

  beforeAll(async () => {
    server = await startTestServer();
    const a = server.client();
    await a.register({ username: 'alice', password: 'alice password' });
    const m = server.client();
    await m.register({ username: 'mallory', password: 'mallory password' });
    alice = new RoomsApi(a);
    mallory = new RoomsApi(m);
    ({ room_id: published } = await alice.create({ visibility: 'public', name: 'Open lounge', topic: 'everyone welcome' }));
    await alice.create({ visibility: 'private', name: 'Board', topic: 'merger with acme-corp' });
  });
  afterAll(() => server?.close());

  const search = async (q: string) => (await mallory.directory({ q })).chunk.map((r) => r.room_id);

  it('security: M4 a private room topic matching the search does not list every published room', async () => {
    expect(await search('acme-corp')).toEqual([]);
    expect(await search('lounge')).toEqual([published]);
  });

  it('security: M4 LIKE wildcards in the search are matched literally', async () => {
    // Before: % and _ matched anything, so a prefix could be probed one character at a time.
    expect(await search('%')).toEqual([]);
    expect(await search('_')).toEqual([]);
    expect(await search('Open_lounge')).toEqual([]);
    expect(await search('\\')).toEqual([]);
    await alice.create({ visibility: 'public', name: '100% done_ok' });
    expect(await search('0% d')).toHaveLength(1);
    expect(await search('e_o')).toHaveLength(1);
  });
});
