/**
 * Profiles commits in a large MLS group (bench/README.md e2e-crypto): builds a group of
 * `--members` devices, then times `--commits` rounds of add, Welcome join, remove and external
 * join (medians), with the V8 profiler on only around the timed commits when `--prof DIR` is given.
 *
 *   node --import tsx bench/src/profile-commit.ts [--members 500] [--commits 9] [--prof /tmp/prof]
 */
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import type { CryptoDevice } from '@parley/sdk/crypto';
import { device, keyPackage } from './e2e-crypto.js';

const arg = (name: string, dflt: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? (process.argv[i + 1] ?? dflt) : dflt;
};
const MEMBERS = Number(arg('members', '500'));
const COMMITS = Number(arg('commits', '9'));
const PROF = arg('prof', '');
/** Which operation the profiler samples: `remove` (default), `add`, `welcome` or `all`. */
const ONLY = arg('only', 'remove');
const ROOM = '!prof:a.bench';

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
const cpu = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

const owner = await device('@owner:a.bench', undefined);
const others: CryptoDevice[] = [];
for (let i = 0; i < MEMBERS - 1; i++) others.push(await device(`@m${i}:b.bench`, undefined));
const fresh: CryptoDevice[] = [];
for (let i = 0; i < COMMITS; i++) fresh.push(await device(`@new${i}:c.bench`, undefined));
const outsiders: CryptoDevice[] = [];
for (let i = 0; i < COMMITS; i++) outsiders.push(await device(`@ext${i}:c.bench`, undefined));
const observer = others[0]!;
for (const d of [owner, observer, ...fresh, ...outsiders])
  for (const o of [owner, ...others, ...fresh, ...outsiders]) await d.pinUserKey(o.userId, o.userSigningKey!);
await owner.createGroup(ROOM);
const bulk = await owner.prepareCommit(ROOM, { add: await Promise.all(others.map(keyPackage)) });
await owner.confirmCommit(ROOM);
const joined = await observer.joinFromWelcome(ROOM, bulk.welcome!);
if (!joined.ok) throw new Error(`observer join: ${joined.reason}`);

const session = new Session();
if (PROF !== '') {
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 200 });
}
const profiles: object[] = [];
const t: Record<string, number[]> = {
  add: [],
  add_cpu: [],
  remove: [],
  remove_cpu: [],
  process_add: [],
  process_remove: [],
  welcome: [],
  welcome_cpu: [],
  external: [],
  external_cpu: [],
  process_external: [],
};
const time = async (key: string, fn: () => Promise<unknown>) => {
  const sample = PROF !== '' && (ONLY === 'all' || ONLY === key);
  if (sample) await session.post('Profiler.start');
  const c0 = cpu();
  const t0 = performance.now();
  await fn();
  t[key]!.push(performance.now() - t0);
  t[`${key}_cpu`]?.push(cpu() - c0);
  if (sample) profiles.push((await session.post('Profiler.stop')).profile);
};
for (let i = 0; i < COMMITS; i++) {
  const kp = await keyPackage(fresh[i]!);
  let p: Awaited<ReturnType<CryptoDevice['prepareCommit']>> | undefined;
  await time('add', async () => {
    p = await owner.prepareCommit(ROOM, { add: [kp] });
    await owner.confirmCommit(ROOM);
  });
  const add = p!;
  await time('process_add', async () => {
    const r = await observer.processCommit(ROOM, add.content);
    if (!r.ok) throw new Error(r.reason);
  });
  await time('welcome', async () => {
    const r = await fresh[i]!.joinFromWelcome(ROOM, add.welcome!);
    if (!r.ok) throw new Error(r.reason);
  });
  const victim = others[others.length - 1 - i]!;
  await time('remove', async () => {
    p = await owner.prepareCommit(ROOM, { remove: [{ userId: victim.userId }] });
    await owner.confirmCommit(ROOM);
  });
  const rm = p!;
  await time('process_remove', async () => {
    const r = await observer.processCommit(ROOM, rm.content);
    if (!r.ok) throw new Error(r.reason);
  });
  // An external join (RFC 9420 §12.4.3.2) from the GroupInfo the owner publishes.
  const groupInfo = await owner.exportGroupInfo(ROOM);
  const outsider = outsiders[i]!;
  await time('external', async () => {
    p = await outsider.prepareExternalJoin(ROOM, groupInfo);
    await outsider.confirmCommit(ROOM);
  });
  const ext = p!;
  await time('process_external', async () => {
    const r = await observer.processCommit(ROOM, ext.content);
    if (!r.ok) throw new Error(`${r.reason} ${r.detail}`);
  });
  const r = await owner.processCommit(ROOM, ext.content);
  if (!r.ok) throw new Error(`${r.reason} ${r.detail}`);
}
for (const [i, profile] of profiles.entries()) writeFileSync(`${PROF}/${ONLY}-${i}.cpuprofile`, JSON.stringify(profile));
if (profiles.length > 0) console.error(`profiles: ${PROF}/${ONLY}-*.cpuprofile`);
const out: Record<string, number> = {};
for (const [k, v] of Object.entries(t)) if (v.length > 0) out[k] = Math.round(median(v) * 10) / 10;
console.log(JSON.stringify({ members: MEMBERS, commits: COMMITS, median_ms: out, remove_all: t.remove!.map(Math.round) }));
