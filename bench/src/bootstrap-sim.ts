import { randomBytes } from 'node:crypto';
import { AddressBook, buildDescriptor } from '@parley/federation/bootstrap';
import { generateSigningKey } from '@parley/federation/keys';
import type { BootstrapDescriptor } from '@parley/schemas';

export interface BootstrapSimOptions {
  /** Servers in the simulated network. */
  nodes: number;
  /** Share of them whose operators announce (the rest read lists only). */
  announcing: number;
  /** Seeds every server starts from. */
  seeds: number;
  /** Give up after this many rounds. */
  maxRounds: number;
  /** The real pull interval a round stands for (bootstrap.pull_interval_ms). */
  roundMs: number;
  /**
   * New or newer descriptors of one list the receiver checks (the homeserver's 64 per
   * message; replays of what it holds are free; its per-peer budget refills 30 a minute, so
   * at a 30 min round it never binds below that).
   */
  verifyPerMessage?: number;
}

/**
 * Bootstrap-list convergence with in-process nodes: each node keeps a real AddressBook and,
 * every round (one `pull_interval_ms`), pulls the list of two servers it knows (and its seeds
 * while it knows fewer than three). A list holds the answering server's own descriptor when it
 * announces and a random sample of up to 255 entries of its book, as the homeserver answers,
 * of which the receiver checks at most `verifyPerMessage` new ones (64, as the homeserver does);
 * at its start, and again each time it re-signs (every 12 h), an announcing server pushes its
 * descriptor to three servers (hop limit 3).
 * Signatures are made once and not re-checked here (the homeserver verifies each against the
 * named server's key; that cost is in the `verify` scenario). Reports rounds and simulated time
 * until every node knows every announcing node, and the share known after each round.
 */
export async function bootstrapSim(o: BootstrapSimOptions): Promise<Record<string, unknown>> {
  const started = performance.now();
  const perMessage = o.verifyPerMessage ?? 64;
  let seed = 42;
  const random = () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const now = Date.now();
  const key = generateSigningKey();
  const names = Array.from({ length: o.nodes }, (_, i) => `n${i}.sim`);
  const hosts = names.map(() => `${11 + Math.floor(random() * 200)}.${Math.floor(random() * 256)}.${Math.floor(random() * 256)}.1`);
  const announces = names.map((_, i) => i < o.seeds || random() < o.announcing);
  const sign = (i: number, issued: number) =>
    buildDescriptor({
      serverName: names[i] as string,
      key,
      endpoints: [{ host: hosts[i] as string, port: 8448 }],
      tlsFingerprints: [],
      capabilities: [],
      now: issued,
      validForMs: 86_400_000,
    });
  const descriptors: Array<BootstrapDescriptor | null> = names.map((_, i) => (announces[i] ? sign(i, now) : null));
  // The homeserver re-signs its descriptor halfway through its validity (12 h by default) and
  // pushes the new one: a descriptor whose first pushes all fell on full slots gets out then.
  const renewEvery = Math.max(1, Math.round(43_200_000 / o.roundMs));
  const books = names.map(() => new AddressBook({ secret: randomBytes(32), now: () => now, random }));
  const index = new Map(names.map((n, i) => [n, i]));
  const announcing = names.filter((_, i) => announces[i]);
  const seeds = names.slice(0, o.seeds);

  const list = (i: number): BootstrapDescriptor[] => {
    const own = descriptors[i];
    const sample = (books[i] as AddressBook).select(255).map((e) => e.descriptor);
    return own ? [own, ...sample] : sample;
  };
  const complete = (i: number) => {
    const b = books[i] as AddressBook;
    return announcing.every((n) => n === names[i] || b.get(n) !== undefined);
  };
  const knownShare = () => {
    let sum = 0;
    for (let i = 0; i < o.nodes; i++) sum += (books[i] as AddressBook).size / Math.max(1, announcing.length - (announces[i] ? 1 : 0));
    return Math.round((1000 * sum) / o.nodes) / 10;
  };

  // A push (POST bootstrap/announce): the receiver adds what is new and passes it on to
  // `fanout` servers it knows with one hop less, as the homeserver does.
  let pushes = 0;
  const push = (from: number, d: BootstrapDescriptor, hops: number) => {
    const targets = new Set((books[from] as AddressBook).select(3, { exclude: new Set([d.server_name]) }).map((e) => e.serverName));
    if (targets.size < 3) for (const s of seeds) if (s !== names[from] && s !== d.server_name) targets.add(s);
    for (const t of [...targets].slice(0, 3)) {
      pushes++;
      const ti = index.get(t) as number;
      const added = (books[ti] as AddressBook).add(d, { name: names[from] as string, host: hosts[from] as string });
      if ((added.kind === 'added' || added.kind === 'updated') && hops > 0) push(ti, d, hops - 1);
    }
  };

  const shares: number[] = [];
  let rounds = 0;
  let done = false;
  while (rounds < o.maxRounds && !done) {
    rounds++;
    for (let i = 0; i < o.nodes; i++) {
      const b = books[i] as AddressBook;
      const peers = new Set(b.select(2).map((e) => e.serverName));
      if (b.size < 3) for (const s of seeds) peers.add(s);
      peers.delete(names[i] as string);
      for (const peer of peers) {
        const p = index.get(peer) as number;
        let checked = 0;
        for (const d of list(p)) {
          if (d.server_name === names[i] || (b.get(d.server_name)?.descriptor.issued_ts ?? -1) >= d.issued_ts) continue;
          if (checked++ >= perMessage) break;
          b.add(d, { name: peer, host: hosts[p] as string });
        }
        b.good(peer);
      }
      for (const c of b.collisions()) b.resolveCollision(c.newcomer, true);
      // At its start (the first round) an announcing server pushes its own descriptor.
      if (announces[i] && (rounds - 1) % renewEvery === 0) {
        if (rounds > 1) descriptors[i] = sign(i, now + rounds);
        push(i, descriptors[i] as BootstrapDescriptor, 3);
      }
    }
    shares.push(knownShare());
    done = names.every((_, i) => complete(i));
  }
  return {
    scenario: 'bootstrap-sim',
    nodes: o.nodes,
    announcing: announcing.length,
    converged: done,
    pushes,
    rounds,
    simulated_s: Math.round((rounds * o.roundMs) / 1000),
    round_ms_assumed: o.roundMs,
    renew_every_rounds: renewEvery,
    verify_per_message: perMessage,
    known_share_pct_by_round: shares,
    wall_s: Math.round((performance.now() - started) / 100) / 10,
  };
}
