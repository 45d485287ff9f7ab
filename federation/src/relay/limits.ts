import { networkGroup } from '../bootstrap/group.js';
import { addressBucket } from '../transport/ssrf.js';

/**
 * What a relay enforces and publishes (docs/protocol.md, "Anchor relays"): how many servers
 * may reserve, from where, and how much each reservation may carry.
 */
export interface RelayLimits {
  /** Reservations held at once on this relay. */
  max_reservations: number;
  /** Reservations from one IP address (an IPv6 /64). */
  reservations_per_ip: number;
  /** Reservations from one network (IPv4 /16, IPv6 /32). */
  reservations_per_network: number;
  /** Requests per second one origin may send through this relay, to all reservations together. */
  origin_requests_per_second: number;
  /** Body bytes per second carried for one reservation, both ways. */
  reservation_bytes_per_second: number;
  /** Requests per second carried for one reservation. */
  reservation_requests_per_second: number;
  /** Largest request or response body carried. */
  max_body_bytes: number;
  /** Requests waiting for an answer on one reservation. */
  max_in_flight: number;
  /** How long a reservation lasts unless renewed. */
  reservation_ttl_ms: number;
  /** How long a forwarded request waits for the reserved server's answer. */
  request_timeout_ms: number;
}

export const DEFAULT_RELAY_LIMITS: Readonly<RelayLimits> = Object.freeze({
  max_reservations: 1000,
  reservations_per_ip: 4,
  reservations_per_network: 16,
  origin_requests_per_second: 50,
  reservation_bytes_per_second: 2 * 1024 * 1024,
  reservation_requests_per_second: 100,
  max_body_bytes: 16 * 1024 * 1024,
  max_in_flight: 64,
  reservation_ttl_ms: 3_600_000,
  request_timeout_ms: 30_000,
});

/**
 * A token bucket: `rate` tokens a second, holding at most `burst`. take(n) answers whether
 * n tokens were there (and takes them). A request larger than the burst is allowed when the
 * bucket is full, so one big body is not refused forever; it then leaves the bucket in debt.
 */
export class TokenBucket {
  #tokens: number;
  #at: number;
  constructor(
    readonly rate: number,
    readonly burst: number,
    now: number,
  ) {
    this.#tokens = burst;
    this.#at = now;
  }

  take(n: number, now: number): boolean {
    this.#tokens = Math.min(this.burst, this.#tokens + (Math.max(0, now - this.#at) * this.rate) / 1000);
    this.#at = now;
    if (this.#tokens >= n || this.#tokens >= this.burst) {
      this.#tokens -= n;
      return true;
    }
    return false;
  }
}

export type AdmitRefusal = { code: 'PARLEY_RELAY_FULL' | 'PARLEY_RELAY_IP_LIMIT' | 'PARLEY_RELAY_NETWORK_LIMIT'; reason: string };

/**
 * Counts reservations (and handshakes in progress) by IP and network so that one host or one
 * /16 cannot take the relay's slots. Slots are keyed by connection; a server that reserves
 * again names its current slot as `replacing`, so it is not counted twice.
 */
export class ReservationLedger {
  readonly #slots = new Map<string, { ip: string; net: string }>();
  readonly #ips = new Map<string, number>();
  readonly #nets = new Map<string, number>();

  constructor(readonly limits: Pick<RelayLimits, 'max_reservations' | 'reservations_per_ip' | 'reservations_per_network'>) {}

  get size(): number {
    return this.#slots.size;
  }

  /** Whether a new slot may be taken from `address`; does not take it. */
  check(address: string, replacing?: string): AdmitRefusal | undefined {
    const { ip, net } = groups(address);
    const own = replacing === undefined ? undefined : this.#slots.get(replacing);
    const sameIp = own?.ip === ip ? 1 : 0;
    const sameNet = own?.net === net ? 1 : 0;
    if (this.#slots.size - (own ? 1 : 0) >= this.limits.max_reservations) {
      return { code: 'PARLEY_RELAY_FULL', reason: `this relay holds its maximum of ${this.limits.max_reservations} reservations` };
    }
    if ((this.#ips.get(ip) ?? 0) - sameIp >= this.limits.reservations_per_ip) {
      return {
        code: 'PARLEY_RELAY_IP_LIMIT',
        reason: `${ip} already holds ${this.limits.reservations_per_ip} reservations (relay limit reservations_per_ip)`,
      };
    }
    if ((this.#nets.get(net) ?? 0) - sameNet >= this.limits.reservations_per_network) {
      return {
        code: 'PARLEY_RELAY_NETWORK_LIMIT',
        reason: `network ${net} already holds ${this.limits.reservations_per_network} reservations (relay limit reservations_per_network)`,
      };
    }
    return undefined;
  }

  /** Takes a slot for `key`; call check() first. */
  add(key: string, address: string): void {
    this.remove(key);
    const g = groups(address);
    this.#slots.set(key, g);
    this.#ips.set(g.ip, (this.#ips.get(g.ip) ?? 0) + 1);
    this.#nets.set(g.net, (this.#nets.get(g.net) ?? 0) + 1);
  }

  remove(key: string): void {
    const g = this.#slots.get(key);
    if (!g) return;
    this.#slots.delete(key);
    decrement(this.#ips, g.ip);
    decrement(this.#nets, g.net);
  }
}

function groups(address: string): { ip: string; net: string } {
  return { ip: addressBucket(address), net: networkGroup(address) };
}

function decrement(map: Map<string, number>, key: string): void {
  const n = (map.get(key) ?? 1) - 1;
  if (n <= 0) map.delete(key);
  else map.set(key, n);
}

/** The relay limits as published in a key document's `capabilities.relay`. */
export function publishedRelayLimits(limits: RelayLimits): Record<string, number> {
  // Only the limits (the relay block of the configuration holds other settings too, e.g. the
  // store-and-forward `anchors` list): the reservation limits and the hold limits (hold_*).
  const out: Record<string, number> = {};
  for (const [key, value] of Object.entries(limits as unknown as Record<string, unknown>)) {
    if (!(key in DEFAULT_RELAY_LIMITS) && !key.startsWith('hold_')) continue;
    if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) out[key] = value;
  }
  return out;
}
