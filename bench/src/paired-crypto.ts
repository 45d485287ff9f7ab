/**
 * Paired before/after comparison of commits in a large MLS group: two copies of the sdk's
 * crypto (e.g. a `git worktree` of an older commit and this checkout) loaded in one process,
 * a group of `--members` built with each, then add and remove rounds interleaved A/B, B/A, …
 * so both meet the same machine load. Prints the median wall and CPU ms of each side.
 *
 *   git worktree add --detach /tmp/base <commit>   # and link its node_modules to this checkout's
 *   node --import tsx bench/src/paired-crypto.ts --a /tmp/base/sdk/src/crypto/index.ts [--members 500] [--rounds 12]
 */
import { fileURLToPath } from 'node:url';

type Sdk = typeof import('@parley/sdk/crypto');
type Device = Awaited<ReturnType<Sdk['CryptoDevice']['open']>>;

const arg = (name: string, dflt: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? (process.argv[i + 1] ?? dflt) : dflt;
};
const here = fileURLToPath(new URL('../../sdk/src/crypto/index.ts', import.meta.url));
const SIDES = { a: arg('a', here), b: arg('b', here) };
const MEMBERS = Number(arg('members', '500'));
const ROUNDS = Number(arg('rounds', '12'));
const ROOM = '!paired:a.bench';
const cpu = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)] ?? 0;

async function build(path: string) {
  const sdk = (await import(path)) as Sdk;
  const device = async (userId: string): Promise<Device> => {
    const d = await sdk.CryptoDevice.open({ store: new sdk.MemoryCryptoStore(), userId, deviceId: 'D' });
    await d.createUserSigningKey();
    return d;
  };
  const keyPackage = async (d: Device): Promise<string> =>
    (await d.keyPackages.refill({ one_time_remaining: 0, has_last_resort: true }, 1, 1))!.key_packages![0]!;
  const owner = await device('@owner:a.bench');
  const others: Device[] = [];
  for (let i = 0; i < MEMBERS - 1; i++) others.push(await device(`@m${i}:b.bench`));
  const fresh: Device[] = [];
  for (let i = 0; i < ROUNDS; i++) fresh.push(await device(`@new${i}:c.bench`));
  for (const o of [owner, ...others, ...fresh]) await owner.pinUserKey(o.userId, o.userSigningKey!);
  await owner.createGroup(ROOM);
  await owner.prepareCommit(ROOM, { add: await Promise.all(others.map(keyPackage)) });
  await owner.confirmCommit(ROOM);
  return { owner, others, fresh, keyPackage };
}

const groups = { a: await build(SIDES.a), b: await build(SIDES.b) };
const ms: Record<string, number[]> = {};
const record = (key: string, value: number) => {
  ms[key] ??= [];
  ms[key].push(value);
};
const timed = async (key: string, fn: () => Promise<unknown>) => {
  const c0 = cpu();
  const t0 = performance.now();
  await fn();
  record(key, performance.now() - t0);
  record(`${key}_cpu`, cpu() - c0);
};
for (let i = 0; i < ROUNDS; i++) {
  for (const side of i % 2 === 0 ? (['a', 'b'] as const) : (['b', 'a'] as const)) {
    const g = groups[side];
    const kp = await g.keyPackage(g.fresh[i]!);
    await timed(`${side}.add`, async () => {
      await g.owner.prepareCommit(ROOM, { add: [kp] });
      await g.owner.confirmCommit(ROOM);
    });
    const victim = g.others[g.others.length - 1 - i]!;
    await timed(`${side}.remove`, async () => {
      await g.owner.prepareCommit(ROOM, { remove: [{ userId: victim.userId }] });
      await g.owner.confirmCommit(ROOM);
    });
  }
}
const out: Record<string, number> = {};
for (const [key, values] of Object.entries(ms)) out[key] = Math.round(median(values));
console.log(JSON.stringify({ sides: SIDES, members: MEMBERS, rounds: ROUNDS, median_ms: out }));
