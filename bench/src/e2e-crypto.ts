import { CryptoDevice, type CryptoStore, loadSuite, MemoryCryptoStore, type SignerKind } from '@parley/sdk/crypto';

export interface E2eCryptoOptions {
  /** Application messages encrypted by one device and decrypted by another. */
  messages: number;
  /** Members of the group in which one member is added and one removed. */
  members: number;
  /** Add/remove commits to time (each a fresh member). */
  commits: number;
  signer?: SignerKind;
}

const ROOM = '!bench0e2e:a.bench';
const BODY = new TextEncoder().encode('x'.repeat(200));

interface Timed {
  wall_ms: number;
  cpu_ms: number;
}

async function timed(fn: () => Promise<unknown>): Promise<Timed> {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await fn();
  const cpu = process.cpuUsage(cpu0);
  return { wall_ms: round(performance.now() - t0), cpu_ms: round((cpu.user + cpu.system) / 1000) };
}

const round = (n: number) => Math.round(n * 10) / 10;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;

/** A certified device of its own user; every device pins every user key it meets. */
export async function device(
  userId: string,
  signer: SignerKind | undefined,
  store: CryptoStore = new MemoryCryptoStore(),
): Promise<CryptoDevice> {
  const d = await CryptoDevice.open({ store, userId, deviceId: 'D', signer });
  await d.createUserSigningKey();
  return d;
}

export async function keyPackage(d: CryptoDevice): Promise<string> {
  const upload = await d.keyPackages.refill({ one_time_remaining: 0, has_last_resort: true }, 1, 1);
  return upload!.key_packages![0]!;
}

async function pinAll(devices: CryptoDevice[], into: CryptoDevice[]): Promise<void> {
  for (const d of into) for (const o of devices) await d.pinUserKey(o.userId, o.userSigningKey!);
}

/**
 * bench/README.md e2e-crypto, in one Node process through the sdk's CryptoDevice (what bots and
 * the web client run, state persisted to a memory store after every operation):
 * - messages/s: one device encrypts `messages` 200-byte messages, another decrypts each;
 *   the pair's rate, and each side's own rate (CPU time, so a loaded machine shows less);
 * - commit_ms: in a group of `members`, the time to prepare-and-confirm a commit adding one
 *   member and one removing one, how long another member takes to process each, and how
 *   long the added member takes to join from its Welcome, and how long an outsider takes to
 *   join by external commit (and another member to apply it).
 */
export async function e2eCrypto(o: E2eCryptoOptions): Promise<Record<string, unknown>> {
  const suite = await loadSuite({ signer: o.signer });
  const signer = suite.primitives.signer;

  // --- messages -------------------------------------------------------------------------------
  const alice = await device('@alice:a.bench', o.signer);
  const bob = await device('@bob:b.bench', o.signer);
  await pinAll([alice, bob], [alice, bob]);
  await alice.createGroup(ROOM);
  const add = await alice.prepareCommit(ROOM, { add: [await keyPackage(bob)] });
  await alice.confirmCommit(ROOM);
  const joined = await bob.joinFromWelcome(ROOM, add.welcome!);
  if (!joined.ok) throw new Error(`bob join: ${joined.reason}`);
  const ciphertexts: Awaited<ReturnType<CryptoDevice['encrypt']>>[] = [];
  const enc = await timed(async () => {
    for (let i = 0; i < o.messages; i++) ciphertexts.push(await alice.encrypt(ROOM, BODY));
  });
  let failures = 0;
  const dec = await timed(async () => {
    for (const c of ciphertexts) if (!(await bob.decrypt(ROOM, c)).ok) failures += 1;
  });
  const perS = (n: number, ms: number) => Math.round(n / (ms / 1000));

  // --- commits in a large group ---------------------------------------------------------------
  const owner = await device('@owner:a.bench', o.signer);
  const others: CryptoDevice[] = [];
  for (let i = 0; i < o.members - 1; i++) others.push(await device(`@m${i}:b.bench`, o.signer));
  const fresh: CryptoDevice[] = [];
  for (let i = 0; i < o.commits; i++) fresh.push(await device(`@new${i}:c.bench`, o.signer));
  const outsiders: CryptoDevice[] = [];
  for (let i = 0; i < o.commits; i++) outsiders.push(await device(`@ext${i}:c.bench`, o.signer));
  const observer = others[0]!;
  await pinAll([owner, ...others, ...fresh, ...outsiders], [owner, observer, ...fresh, ...outsiders]);
  await owner.createGroup(ROOM);
  const setup = await timed(async () => {
    const bulk = await owner.prepareCommit(ROOM, { add: await Promise.all(others.map(keyPackage)) });
    await owner.confirmCommit(ROOM);
    const r = await observer.joinFromWelcome(ROOM, bulk.welcome!);
    if (!r.ok) throw new Error(`observer join: ${r.reason} ${r.detail}`);
  });
  const addMs: number[] = [];
  const addCpu: number[] = [];
  const removeMs: number[] = [];
  const removeCpu: number[] = [];
  const processAddMs: number[] = [];
  const processRemoveMs: number[] = [];
  const welcomeJoinMs: number[] = [];
  const welcomeJoinCpu: number[] = [];
  const externalJoinMs: number[] = [];
  const externalJoinCpu: number[] = [];
  const processExternalMs: number[] = [];
  let commitBytes = 0;
  let welcomeBytes = 0;
  for (let i = 0; i < o.commits; i++) {
    const newcomer = fresh[i]!;
    const kp = await keyPackage(newcomer);
    let prepared: Awaited<ReturnType<CryptoDevice['prepareCommit']>> | undefined;
    const a = await timed(async () => {
      prepared = await owner.prepareCommit(ROOM, { add: [kp] });
      await owner.confirmCommit(ROOM);
    });
    addMs.push(a.wall_ms);
    addCpu.push(a.cpu_ms);
    commitBytes = Math.max(commitBytes, prepared!.content.commit.length);
    welcomeBytes = Math.max(welcomeBytes, prepared!.welcome!.length);
    processAddMs.push(
      (
        await timed(async () => {
          const r = await observer.processCommit(ROOM, prepared!.content);
          if (!r.ok) throw new Error(`process add: ${r.reason}`);
        })
      ).wall_ms,
    );
    const w = await timed(async () => {
      const r = await newcomer.joinFromWelcome(ROOM, prepared!.welcome!);
      if (!r.ok) throw new Error(`newcomer join: ${r.reason} ${r.detail}`);
    });
    welcomeJoinMs.push(w.wall_ms);
    welcomeJoinCpu.push(w.cpu_ms);
    // Remove a member that is neither the owner nor the observer.
    const victim = others[others.length - 1 - i]!;
    const r = await timed(async () => {
      prepared = await owner.prepareCommit(ROOM, { remove: [{ userId: victim.userId }] });
      await owner.confirmCommit(ROOM);
    });
    removeMs.push(r.wall_ms);
    removeCpu.push(r.cpu_ms);
    processRemoveMs.push(
      (
        await timed(async () => {
          const res = await observer.processCommit(ROOM, prepared!.content);
          if (!res.ok) throw new Error(`process remove: ${res.reason}`);
        })
      ).wall_ms,
    );
    // An outsider joins by external commit from the GroupInfo the owner publishes.
    const groupInfo = await owner.exportGroupInfo(ROOM);
    const outsider = outsiders[i]!;
    const e = await timed(async () => {
      prepared = await outsider.prepareExternalJoin(ROOM, groupInfo);
      await outsider.confirmCommit(ROOM);
    });
    externalJoinMs.push(e.wall_ms);
    externalJoinCpu.push(e.cpu_ms);
    processExternalMs.push(
      (
        await timed(async () => {
          const res = await observer.processCommit(ROOM, prepared!.content);
          if (!res.ok) throw new Error(`process external join: ${res.reason}`);
        })
      ).wall_ms,
    );
    const own = await owner.processCommit(ROOM, prepared!.content);
    if (!own.ok) throw new Error(`owner: process external join: ${own.reason}`);
  }
  return {
    scenario: 'e2e-crypto',
    signer,
    messages: o.messages,
    message_bytes: BODY.length,
    decrypt_failures: failures,
    messages_per_s: perS(o.messages, enc.wall_ms + dec.wall_ms),
    encrypt_per_s: perS(o.messages, enc.wall_ms),
    decrypt_per_s: perS(o.messages, dec.wall_ms),
    messages_per_cpu_s: perS(o.messages, enc.cpu_ms + dec.cpu_ms),
    members: o.members,
    group_setup_ms: setup.wall_ms,
    commit_ms: { add: median(addMs), remove: median(removeMs), add_all: addMs, remove_all: removeMs },
    commit_cpu_ms: { add: median(addCpu), remove: median(removeCpu) },
    process_commit_ms: { add: median(processAddMs), remove: median(processRemoveMs), external: median(processExternalMs) },
    welcome_join_ms: median(welcomeJoinMs),
    welcome_join_cpu_ms: median(welcomeJoinCpu),
    external_join_ms: median(externalJoinMs),
    external_join_cpu_ms: median(externalJoinCpu),
    commit_b64_bytes: commitBytes,
    welcome_b64_bytes: welcomeBytes,
  };
}
