import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { type Config, defaultConfig, mergeConfig } from '../src/config.js';
import { createLogger } from '../src/logger.js';
import { systemClock } from '../src/services/clock.js';
import { UpdateService } from '../src/updates/service.js';
import { until } from './support/net.js';
import { createReleaseRepository } from './support/release-repo.js';
import { serveDir } from './support/static-dir.js';

/** A 1-of-1 release repository served over HTTP, and a server's config that checks it. */
async function setup(updates: Partial<Config['updates']> = {}) {
  const dir = await mkdtemp(path.join(tmpdir(), 'parley-updates-schedule-'));
  const { repo, keys } = await createReleaseRepository(path.join(dir, 'repo'), { trustedRoot: path.join(dir, 'root.json') });
  const site = await serveDir(() => path.join(dir, 'repo'));
  const config = mergeConfig(defaultConfig(), {
    data_dir: path.join(dir, 'data'),
    updates: { mirror: false, upstreams: [site.url], trusted_root: path.join(dir, 'root.json'), check_interval_ms: 60_000, ...updates },
  }) as Config;
  const service = new UpdateService(config, systemClock, createLogger('silent'));
  return {
    repo,
    keys,
    service,
    close: async () => {
      service.stop();
      await site.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

let cleanup: (() => Promise<void>) | null = null;
afterEach(async () => {
  vi.useRealTimers();
  await cleanup?.();
  cleanup = null;
});

describe('update checks', () => {
  it('run at start and then every check_interval_ms: a new release is picked up without an admin', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    const s = await setup();
    cleanup = s.close;
    await s.repo.addTarget('client/a.tgz', Buffer.from('release one'), s.keys, Date.now(), { version: '1.0.0' });
    s.service.start();
    await until(() => s.service.mirror.lastSync !== null);
    expect(Object.keys((await s.service.mirror.targets()) ?? {})).toEqual(['client/a.tgz']);
    await s.repo.addTarget('client/b.tgz', Buffer.from('release two'), s.keys, Date.now(), { version: '2.0.0' });
    vi.advanceTimersByTime(59_000);
    await new Promise((r) => setTimeout(r, 300));
    expect(Object.keys((await s.service.mirror.targets()) ?? {})).toEqual(['client/a.tgz']);
    vi.advanceTimersByTime(1_000);
    await until(async () => Object.keys((await s.service.mirror.targets()) ?? {}).length === 2);
  });

  it('a release with more files than updates.max_targets, or one larger than max_target_bytes, is not taken', async () => {
    const s = await setup({ max_targets: 2, max_target_bytes: 4096 });
    cleanup = s.close;
    await s.repo.addTarget('client/a.tgz', Buffer.alloc(4096, 1), s.keys, Date.now());
    expect(await s.service.check()).toBe(true);
    await s.repo.addTarget('client/big.tgz', Buffer.alloc(4097, 2), s.keys, Date.now());
    expect(await s.service.check()).toBe(false);
    expect(s.service.mirror.lastFailures[0]?.error).toBe('Error: target client/big.tgz is 4097 bytes: over the cap');
    await s.repo.addTarget('client/big.tgz', Buffer.alloc(10, 2), s.keys, Date.now());
    await s.repo.addTarget('client/c.tgz', Buffer.alloc(10, 3), s.keys, Date.now());
    expect(await s.service.check()).toBe(false);
    expect(s.service.mirror.lastFailures[0]?.error).toBe('Error: 3 targets: more than 2');
    // What verified before is still what the server holds.
    expect(Object.keys((await s.service.mirror.targets()) ?? {})).toEqual(['client/a.tgz']);
  });
});
