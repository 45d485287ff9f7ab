import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { downloadMedia, isParleyApiError, type ParleyClient, uploadMedia } from '@parley/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Federation, type FedServer, startFederation } from './support/federation.js';

// Issue 10, M5: every random remote media ID used to cache up to the upload cap on this
// server with no owner, no total and no eviction. Now: a capped, LRU-evicted cache whose
// fetches each requesting user pays for in a rate limit, and a metric that shows it.
const FILE = 1000;
const CACHE_MAX = 2500; // room for two files, not three

async function status(p: Promise<unknown>): Promise<number> {
  try {
    await p;
    return 200;
  } catch (err) {
    if (isParleyApiError(err)) return err.status;
    throw err;
  }
}

describe('security: remote media cache', () => {
  let fed: Federation;
  let hs1: FedServer;
  let hs2: FedServer;
  let alice: ParleyClient;
  let bob: ParleyClient;
  let carol: ParleyClient;

  beforeAll(async () => {
    fed = await startFederation(['hs1.test', 'hs2.test'], {
      overrides: (name) =>
        name === 'hs2.test'
          ? {
              media: { remote_cache_max_bytes: CACHE_MAX },
              rate_limits: { enabled: true, remote_media_per_user: { burst: 3, per_minute: 0.001 } },
            }
          : {},
    });
    hs1 = fed.byName('hs1.test');
    hs2 = fed.byName('hs2.test');
    alice = (await hs1.user('alice')).client;
    bob = (await hs2.user('bob')).client;
    carol = (await hs2.user('carol')).client;
  }, 60_000);
  afterAll(async () => {
    await fed?.close();
  });

  const cachedIds = async () =>
    (await hs2.running.services
      .db('media')
      .whereNotNull('origin')
      .orderBy('remote_media_id')
      .select('remote_media_id', 'media_id')) as Array<{
      remote_media_id: string;
      media_id: string;
    }>;

  it('security: M5 the remote cache stays under its cap, evicting the least recently used file', async () => {
    const files = await Promise.all(
      [1, 2, 3].map(
        async () => (await uploadMedia(alice, new Uint8Array(randomBytes(FILE)), { contentType: 'application/octet-stream' })).media_id,
      ),
    );
    const [f1, f2, f3] = files as [string, string, string];
    const uri = (id: string) => `parley://hs1.test/${id}`;
    await downloadMedia(bob, uri(f1));
    await downloadMedia(bob, uri(f2));
    const f2Local = (await cachedIds()).find((r) => r.remote_media_id === f2)?.media_id as string;
    // f1 used again: f2 is now the least recently used.
    await downloadMedia(bob, uri(f1));
    await downloadMedia(bob, uri(f3));

    expect((await cachedIds()).map((r) => r.remote_media_id).sort()).toEqual([f1, f3].sort());
    expect(existsSync(path.join(hs2.running.config.data_dir, 'media'))).toBe(true);
    const onDisk = await hs2.running.services.media.storedPath(f2Local);
    expect(existsSync(onDisk)).toBe(false);
    const metrics = await (await fetch(`${hs2.url}/metrics`)).text();
    const value = (name: string) => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\d+)$`, 'm').exec(metrics)?.[1] ?? Number.NaN);
    expect(value('parley_media_remote_cache_bytes')).toBeLessThanOrEqual(CACHE_MAX);
    expect(value('parley_media_remote_cache_bytes')).toBe(2 * FILE);
    expect(value('parley_media_remote_evictions_total')).toBe(1);
    // Evicted media is fetched again on demand.
    expect((await downloadMedia(carol, uri(f2))).data.byteLength).toBe(FILE);
  });

  it('security: M5 each user may start only so many remote fetches; cached files cost nothing', async () => {
    // bob fetched three files in the test above: his burst of 3 is spent.
    const random = () => `parley://hs1.test/${randomBytes(24).toString('base64url')}`;
    expect(await status(downloadMedia(bob, random()))).toBe(429);
    // Files already cached are served without a fetch.
    const [cached] = await cachedIds();
    expect(await status(downloadMedia(bob, `parley://hs1.test/${cached?.remote_media_id}`))).toBe(200);
    // Random IDs are the attack: each one is a fetch, found or not.
    const dave = (await hs2.user('dave')).client;
    expect([await status(downloadMedia(dave, random())), await status(downloadMedia(dave, random()))]).toEqual([404, 404]);
    expect(await status(downloadMedia(dave, random()))).toBe(404);
    expect(await status(downloadMedia(dave, random()))).toBe(429);
  });
});
