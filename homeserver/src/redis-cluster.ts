import { Cluster, type ClusterNode, type ClusterOptions, type RedisOptions } from 'ioredis';

/**
 * Redis Cluster (`redis.cluster: true`): `redis.url` names one node, the rest are discovered.
 * Everything Parley keeps in Redis is one key per command (rate limits run a one-key script),
 * pub/sub channels are cluster-wide, and BullMQ's keys share one hash tag (`{<prefix>bull}`) so
 * its multi-key scripts stay in one slot. Loaded only when configured (its own bundle chunk).
 */
export class ParleyCluster extends Cluster {
  /**
   * `duplicate(options)` as on a single Redis, which is how the delivery engine, the admin
   * jobs (BullMQ's connections) and the stream bus (its subscriber) ask for their own
   * connections: the Redis options go to every node's connection, `keyPrefix` to the cluster.
   */
  override duplicate(options?: ClusterNode[] | RedisOptions, clusterOptions?: ClusterOptions): ParleyCluster {
    if (Array.isArray(options)) return new ParleyCluster(options, { ...this.options, ...clusterOptions });
    const { keyPrefix, ...perNode } = options ?? {};
    return new ParleyCluster(this.startupNodesOf(), {
      ...this.options,
      ...(keyPrefix === undefined ? {} : { keyPrefix }),
      redisOptions: { ...this.options.redisOptions, ...perNode },
    });
  }

  private startupNodesOf(): Array<{ host: string; port: number }> {
    return (this.options as ClusterOptions & { parleyStartupNodes: Array<{ host: string; port: number }> }).parleyStartupNodes;
  }
}

/** A cluster client from one node's URL (`redis://[:password@]host:port`). */
export function connectCluster(url: string, options: { keyPrefix: string; maxRetriesPerRequest: number | null }): ParleyCluster {
  const u = new URL(url);
  const nodes = [{ host: u.hostname, port: Number(u.port || 6379) }];
  const redisOptions: RedisOptions = { maxRetriesPerRequest: options.maxRetriesPerRequest };
  if (u.username) redisOptions.username = decodeURIComponent(u.username);
  if (u.password) redisOptions.password = decodeURIComponent(u.password);
  if (u.protocol === 'rediss:') redisOptions.tls = {};
  return new ParleyCluster(nodes, {
    keyPrefix: options.keyPrefix,
    enableOfflineQueue: true,
    redisOptions,
    // Kept with the options so duplicate() starts from the same node.
    parleyStartupNodes: nodes,
  } as ClusterOptions);
}
