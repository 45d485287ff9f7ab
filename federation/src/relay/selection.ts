import { createHmac } from 'node:crypto';
import { networkGroup } from '../bootstrap/group.js';
import { parseServerName } from '../transport/server-name.js';

/**
 * Deterministic relay selection (docs/protocol.md, "Store-and-forward"). When an origin cannot
 * reach a destination directly, it hands the signed transaction to a relay chosen here:
 *
 * - Candidates are the room's participating servers that offer the `relay` capability plus the
 *   advertised anchor relays, each only once it has been known for `minAgeMs` (a participant
 *   since its first join, an anchor since it was first seen). A burst of newly appearing
 *   servers therefore cannot become a room's relay: they are all too young.
 * - Candidates are ranked by HMAC-SHA256 keyed with the scope (room ID or destination) and
 *   epoch over the server name, so every participant with the same inputs computes the same
 *   order, the order changes each epoch, and no server can choose a name that ranks first
 *   for every room.
 * - Walking that order, a candidate is skipped when its operator (operator ID, else the
 *   server name's registrable domain) or any of its networks (IPv4 /16, IPv6 /32) is taken
 *   by a relay already chosen.
 *
 * Pure: no clock, no I/O; `now` is an input.
 */

export interface RelayCandidate {
  /** Server name (host with optional port). */
  serverName: string;
  /** When this server became known: its first join to the room, or when the anchor was first seen (ms). */
  sinceTs: number;
  /** Operator ID (e.g. the key that signs its descriptor) when known; else its registrable domain is used. */
  operator?: string;
  /** Addresses the name resolves to; each adds its /16 (IPv4) or /32 (IPv6) to the diversity rule. */
  addresses?: readonly string[];
}

export interface SelectionInput {
  /** A room ID, or a destination server name for traffic that belongs to no room. */
  scope: string;
  /** The selection epoch (see epochOf). */
  epoch: number;
  /** The room's participating servers that offer the relay capability. */
  participants: readonly RelayCandidate[];
  /** Advertised anchor relays (bootstrap lists, configuration). */
  anchors: readonly RelayCandidate[];
  /** Servers that may not relay this traffic: the origin and the destination. */
  exclude: readonly string[];
  now: number;
  /** A candidate must have been known this long. */
  minAgeMs: number;
  /** How many relays to choose (the first is tried first). */
  count: number;
}

export interface SelectedRelay {
  serverName: string;
  operator: string;
  networks: string[];
  /** The candidate's rank value (hex), lowest first. */
  rank: string;
}

/** Default selection epoch: relays rotate once a day. */
export const DEFAULT_EPOCH_MS = 86_400_000;
/** Default minimum age of a candidate: a day. */
export const DEFAULT_MIN_AGE_MS = 86_400_000;
/** Candidates considered at most (a remote room with more relay-capable servers is cut, deterministically). */
export const MAX_CANDIDATES = 4096;

/** The epoch a timestamp falls in. */
export function epochOf(now: number, epochMs: number = DEFAULT_EPOCH_MS): number {
  if (!Number.isFinite(now) || now < 0) throw new RangeError('now: expected a non-negative timestamp');
  if (!Number.isSafeInteger(epochMs) || epochMs <= 0) throw new RangeError('epochMs: expected a positive integer');
  return Math.floor(now / epochMs);
}

/** The operator a server counts as: its operator ID when given, else its name's registrable domain (or IP). */
export function operatorOf(candidate: Pick<RelayCandidate, 'serverName' | 'operator'>): string {
  if (candidate.operator) return `op:${candidate.operator}`;
  const parsed = parseServerName(candidate.serverName);
  const host = parsed ? parsed.host : candidate.serverName;
  return `domain:${networkGroup(host)}`;
}

/** The networks a candidate occupies: /16 or /32 of each address, and its name's host when it is an IP literal. */
export function networksOf(candidate: Pick<RelayCandidate, 'serverName' | 'addresses'>): string[] {
  const out = new Set<string>();
  const parsed = parseServerName(candidate.serverName);
  if (parsed && parsed.ipVersion !== 0) out.add(networkGroup(parsed.host));
  for (const a of candidate.addresses ?? []) {
    const g = networkGroup(a);
    if (g.startsWith('ipv4:') || g.startsWith('ipv6:')) out.add(g);
  }
  return [...out].sort();
}

/** The rank of a server for a scope and epoch: HMAC-SHA256(key = scope ‖ epoch, server name), hex. */
export function rankOf(scope: string, epoch: number, serverName: string): string {
  const key = `parley-relay-selection/v1\n${scope}\n${epoch}`;
  return createHmac('sha256', key).update(serverName.toLowerCase()).digest('hex');
}

/** Chooses up to `count` relays for the input; the same inputs give the same answer everywhere. */
export function selectRelays(input: SelectionInput): SelectedRelay[] {
  if (!Number.isSafeInteger(input.count) || input.count < 0) throw new RangeError('count: expected a non-negative integer');
  if (!Number.isSafeInteger(input.epoch)) throw new RangeError('epoch: expected an integer');
  if (typeof input.scope !== 'string' || input.scope.length === 0) throw new TypeError('scope: expected a room ID or server name');
  const excluded = new Set(input.exclude.map((s) => s.toLowerCase()));
  // One entry per server name; a server listed both ways counts once, known since its earliest.
  const byName = new Map<string, RelayCandidate>();
  for (const c of [...input.participants, ...input.anchors]) {
    const name = c.serverName.toLowerCase();
    if (parseServerName(name) === undefined || excluded.has(name) || !Number.isFinite(c.sinceTs)) continue;
    const prev = byName.get(name);
    if (!prev) {
      byName.set(name, { ...c, serverName: name });
      continue;
    }
    byName.set(name, {
      serverName: name,
      sinceTs: Math.min(prev.sinceTs, c.sinceTs),
      operator: prev.operator ?? c.operator,
      addresses: [...(prev.addresses ?? []), ...(c.addresses ?? [])],
    });
  }
  const old = [...byName.values()].filter((c) => input.now - c.sinceTs >= input.minAgeMs);
  const ranked = old
    .map((c) => ({ c, rank: rankOf(input.scope, input.epoch, c.serverName) }))
    .sort((x, y) => (x.rank < y.rank ? -1 : x.rank > y.rank ? 1 : x.c.serverName < y.c.serverName ? -1 : 1))
    .slice(0, MAX_CANDIDATES);
  const operators = new Set<string>();
  const networks = new Set<string>();
  const chosen: SelectedRelay[] = [];
  for (const { c, rank } of ranked) {
    if (chosen.length >= input.count) break;
    const operator = operatorOf(c);
    const nets = networksOf(c);
    if (operators.has(operator) || nets.some((n) => networks.has(n))) continue;
    operators.add(operator);
    for (const n of nets) networks.add(n);
    chosen.push({ serverName: c.serverName, operator, networks: nets, rank });
  }
  return chosen;
}
