import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import net from 'node:net';
import { Redis } from 'ioredis';

/**
 * Redis for tests: REDIS_URL, else 127.0.0.1:6379 when it answers, else a redis-server
 * started on a free port when the binary exists. Each caller gets its own key prefix.
 */
let resolved: Promise<string | null> | undefined;
let child: ChildProcess | undefined;

/** Whether a Redis at `url` answers PING (one try, no reconnecting). */
export async function redisAnswers(url: string): Promise<boolean> {
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, connectTimeout: 1500, retryStrategy: () => null });
  client.on('error', () => {});
  try {
    await client.connect();
    return (await client.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    client.disconnect();
  }
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

async function resolveRedis(): Promise<string | null> {
  for (const url of [process.env.REDIS_URL, 'redis://127.0.0.1:6379'].filter(Boolean) as string[]) {
    if (await redisAnswers(url)) return url;
  }
  const bin = ['/usr/bin/redis-server', '/usr/local/bin/redis-server'].find((b) => existsSync(b));
  if (!bin) return null;
  const port = await freePort();
  child = spawn(bin, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  child.unref();
  process.once('exit', () => child?.kill());
  const url = `redis://127.0.0.1:${port}`;
  for (let i = 0; i < 50; i++) {
    if (await redisAnswers(url)) return url;
    await new Promise((r) => setTimeout(r, 100));
  }
  return null;
}

export interface TestRedis {
  url: string;
  prefix: string;
  /** Deletes every key under this prefix. */
  cleanup(): Promise<void>;
}

export async function createTestRedis(): Promise<TestRedis> {
  resolved ??= resolveRedis();
  const url = await resolved;
  if (!url) throw new Error('no Redis available: set REDIS_URL or install redis-server');
  const prefix = `parley-test:${randomBytes(5).toString('hex')}:`;
  return {
    url,
    prefix,
    cleanup: async () => {
      const client = new Redis(url);
      let cursor = '0';
      do {
        const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
        cursor = next;
        if (keys.length > 0) await client.del(...keys);
      } while (cursor !== '0');
      client.disconnect();
    },
  };
}
