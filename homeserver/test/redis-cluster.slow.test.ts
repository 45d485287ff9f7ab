import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ParleyClient, RoomsApi } from '@parley/sdk';
import { Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../src/logger.js';
import { type RunningHomeserver, startHomeserver } from '../src/server.js';
import { freePort, until } from './support/net.js';
import { createTestDatabase, type TestDatabase } from './support/postgres.js';
import { redisAnswers } from './support/redis.js';
import { testConfig } from './support/server.js';
import { bodyOf, openStream } from './support/stream-client.js';

const REDIS_SERVER = ['/usr/bin/redis-server', '/usr/local/bin/redis-server'].find((b) => existsSync(b)) as string;
const REDIS_CLI = ['/usr/bin/redis-cli', '/usr/local/bin/redis-cli'].find((b) => existsSync(b)) as string;

/**
 * `redis.cluster: true`: two homeserver processes of one server name on a real three-node Redis
 * Cluster. Live frames cross between them (pub/sub), admin jobs run through BullMQ (whose
 * multi-key scripts fail with CROSSSLOT unless every key of a queue is in one slot: the
 * `{<prefix>bull}` hash tag).
 */
describe('Redis Cluster', () => {
  let dir: string;
  let db: TestDatabase;
  const nodes: ChildProcess[] = [];
  const ports: number[] = [];
  const servers: RunningHomeserver[] = [];
  const prefix = `parley-cluster-${process.pid}:`;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'parley-redis-cluster-'));
    for (let i = 0; i < 3; i++) {
      const port = await freePort();
      ports.push(port);
      nodes.push(
        spawn(
          REDIS_SERVER,
          ['--port', String(port), '--bind', '127.0.0.1', '--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${port}.conf`].concat(
            ['--dir', dir, '--save', '', '--appendonly', 'no', '--maxmemory-policy', 'noeviction'],
          ),
          { stdio: 'ignore' },
        ),
      );
    }
    for (const port of ports) {
      await until(() => redisAnswers(`redis://127.0.0.1:${port}`));
    }
    execFileSync(REDIS_CLI, ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes'], {
      stdio: 'ignore',
    });
    await until(() =>
      ports.every((p) =>
        execFileSync(REDIS_CLI, ['-p', String(p), 'cluster', 'info'])
          .toString()
          .includes('cluster_state:ok'),
      ),
    );

    db = await createTestDatabase();
    const config = testConfig(db.url, dir, {
      server_name: 'cluster.test',
      redis: { url: `redis://127.0.0.1:${ports[1]}`, key_prefix: prefix, cluster: true },
    });
    // Two processes of one server: the first applies the migrations.
    servers.push(await startHomeserver(config, { log: createLogger('silent') }));
    servers.push(await startHomeserver(config, { log: createLogger('silent') }));
  }, 120_000);

  afterAll(async () => {
    for (const s of servers) await s.stop().catch(() => {});
    for (const n of nodes) n.kill('SIGKILL');
    await db?.drop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('frames cross processes and admin jobs run through BullMQ', async () => {
    const [a, b] = servers as [RunningHomeserver, RunningHomeserver];
    const alice = new ParleyClient({ baseUrl: a.url });
    const root = await alice.register({ username: 'alice', password: 'alice password' });
    await a.services.users.setAdmin(root.user_id, true);
    const bob = new ParleyClient({ baseUrl: b.url });
    const bobSession = await bob.register({ username: 'bob', password: 'bob password' });
    const { room_id: roomId } = await new RoomsApi(alice).create({ visibility: 'public', name: 'Cluster' });
    await new RoomsApi(bob).join(roomId);

    // Bob's stream is on process B, the send on process A.
    const stream = openStream(b.url, bobSession.access_token);
    await stream.ready;
    await new RoomsApi(alice).sendText(roomId, 'across the cluster');
    await stream.waitFor((f) => bodyOf(f) === 'across the cluster', 15_000);
    stream.close();

    // An admin job through BullMQ, taken by whichever process's worker gets it.
    const res = await fetch(`${b.url}/api/v1/admin/rooms/${roomId}/shutdown`, {
      method: 'POST',
      headers: { authorization: `Bearer ${root.access_token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ delete: true }),
    });
    expect(res.status).toBe(202);
    const { job } = (await res.json()) as { job: { id: string } };
    await expect.poll(async () => a.services.admin.jobs.find(job.id), { timeout: 30_000 }).toMatchObject({ state: 'done' });
    expect(await a.services.roomRepo.find(roomId)).toBeUndefined();

    // BullMQ's keys are all in one slot (its hash tag).
    const cluster = new Cluster([{ host: '127.0.0.1', port: ports[0] as number }]);
    try {
      await new Promise((resolve) => cluster.once('ready', resolve));
      const keys: string[] = [];
      for (const node of cluster.nodes('master')) keys.push(...(await node.keys(`*${prefix}*`)));
      const bull = keys.filter((k) => k.startsWith(`{${prefix}bull}`));
      expect(bull.length).toBeGreaterThan(0);
      const slots = new Set(await Promise.all(bull.map((k) => cluster.cluster('KEYSLOT', k))));
      expect(slots.size).toBe(1);
    } finally {
      cluster.disconnect();
    }
  }, 120_000);
});
