import ipaddr from 'ipaddr.js';

/**
 * The SSRF guard of docs/protocol.md: outbound federation dials only public unicast addresses, checked
 * on the resolved IP at connect time, unless the operator's allowlist permits more.
 *
 * The ranges come from ipaddr.js, whose tables follow the IANA special-purpose registries
 * (RFC 6890): anything it names — loopback, private, linkLocal, uniqueLocal, multicast,
 * unspecified, broadcast, carrierGradeNat, reserved (which holds the documentation and
 * benchmarking ranges), as112, amt, orchid, discard… — is refused, and only 'unicast' passes.
 * Addresses that carry an IPv4 address inside an IPv6 one are judged by what they carry,
 * because the network delivers them there.
 */

// RFC 4291 §2.4: global unicast is 2000::/3; everything outside it is reserved or special.
const GLOBAL_UNICAST_V6 = ipaddr.parseCIDR('2000::/3');
// RFC 6052 §2.1: the well-known NAT64 prefix, which DNS64 resolvers hand to IPv6-only hosts
// for public IPv4 servers. The local-use prefix 64:ff9b:1::/48 (RFC 8215) stays refused.
const NAT64_WELL_KNOWN = ipaddr.parseCIDR('64:ff9b::/96');

/** True when `ip` (a textual IPv4 or IPv6 address) is public unicast. False for anything else, never throws. */
export function isPublicAddress(ip: unknown): boolean {
  const addr = parseStrictAddress(ip);
  return addr !== undefined && isPublic(addr);
}

function isPublic(addr: ipaddr.IPv4 | ipaddr.IPv6): boolean {
  if (addr.kind() === 'ipv4') return addr.range() === 'unicast';
  const v6 = addr as ipaddr.IPv6;
  const embedded = embeddedIPv4(v6);
  if (embedded !== undefined) return embedded.every((v4) => v4.range() === 'unicast');
  return v6.match(GLOBAL_UNICAST_V6) && v6.range() === 'unicast';
}

/**
 * The IPv4 addresses an IPv6 address delivers to, or undefined when it embeds none:
 * IPv4-mapped ::ffff:a.b.c.d (RFC 4291 §2.5.5.2), NAT64 64:ff9b::a.b.c.d (RFC 6052),
 * 6to4 2002:AABB:CCDD:: (RFC 3056 §2) and Teredo 2001:0:SSSS:SSSS:…:~CCCC:~CCCC, whose server and
 * (inverted) client addresses both count (RFC 4380 §4).
 */
function embeddedIPv4(addr: ipaddr.IPv6): ipaddr.IPv4[] | undefined {
  const p = addr.parts;
  const v4 = (hi: number, lo: number) => new ipaddr.IPv4([hi >> 8, hi & 0xff, lo >> 8, lo & 0xff]);
  if (addr.isIPv4MappedAddress() || addr.match(NAT64_WELL_KNOWN)) return [v4(p[6]!, p[7]!)];
  switch (addr.range()) {
    case '6to4':
      return [v4(p[1]!, p[2]!)];
    case 'teredo':
      return [v4(p[2]!, p[3]!), v4(~p[6]! & 0xffff, ~p[7]! & 0xffff)];
    default:
      return undefined;
  }
}

/**
 * Parses only the canonical textual forms: dotted-quad IPv4 and RFC 4291 §2.2 IPv6, without a
 * zone index. ipaddr.js on its own also reads `0x7f.1`, `017700000001` and other inet_aton
 * spellings, which must not slip past a CIDR check written for dotted quads.
 */
function parseStrictAddress(ip: unknown): ipaddr.IPv4 | ipaddr.IPv6 | undefined {
  if (typeof ip !== 'string' || ip.length > 64) return undefined;
  if (ipaddr.IPv4.isValidFourPartDecimal(ip)) return ipaddr.IPv4.parse(ip);
  if (ip.includes(':') && !ip.includes('%') && ipaddr.IPv6.isValid(ip)) return ipaddr.IPv6.parse(ip);
  return undefined;
}

/**
 * The key under which a caller's address is rate-limited: an IPv4 address as it is (an
 * IPv4-mapped IPv6 address as the IPv4 address it carries), an IPv6 address by its /64, the
 * smallest block one subscriber is given (RFC 6177 §2), since anyone holding a /64 can send
 * from 2^64 addresses. Anything unparsable is its own text, cut to 64 characters. Never throws.
 */
export function addressBucket(ip: unknown): string {
  const addr = parseStrictAddress(ip);
  if (addr === undefined) return typeof ip === 'string' ? ip.slice(0, 64) : 'unknown';
  if (addr.kind() === 'ipv4') return addr.toString();
  const v6 = addr as ipaddr.IPv6;
  if (v6.isIPv4MappedAddress()) return v6.toIPv4Address().toString();
  const parts = v6.parts.slice(0, 4).map((p) => p.toString(16));
  return `${parts.join(':')}::/64`;
}

/** Operator settings: the allowlist is a list of CIDRs (`127.0.0.0/8`, `fd00::/8`) or single addresses. */
export interface AddressPolicyOptions {
  allow?: readonly string[];
}

/**
 * Which resolved addresses outbound federation may dial: public unicast, plus anything the
 * allowlist covers (tests and LAN set-ups allowlist loopback or their private range). An
 * IPv4-mapped IPv6 address is matched against IPv4 entries as the IPv4 address it is.
 */
export class AddressPolicy {
  readonly #allow: Array<[ipaddr.IPv4 | ipaddr.IPv6, number]>;

  constructor(options: AddressPolicyOptions = {}) {
    const allow = options.allow ?? [];
    if (!Array.isArray(allow)) throw new TypeError('allow: expected an array of CIDR strings');
    this.#allow = allow.map((entry, i) => parseAllowEntry(entry, `allow[${i}]`));
  }

  allowed(ip: unknown): boolean {
    const addr = parseStrictAddress(ip);
    if (addr === undefined) return false;
    if (isPublic(addr)) return true;
    const candidates = [addr];
    if (addr.kind() === 'ipv6' && (addr as ipaddr.IPv6).isIPv4MappedAddress()) candidates.push((addr as ipaddr.IPv6).toIPv4Address());
    return this.#allow.some(([net, bits]) => candidates.some((c) => c.kind() === net.kind() && c.match(net, bits)));
  }

  /** The allowlist as configured, normalised (`127.0.0.0/8`), for logs and the admin view. */
  get allowlist(): string[] {
    return this.#allow.map(([net, bits]) => `${net.toString()}/${bits}`);
  }
}

function parseAllowEntry(entry: unknown, name: string): [ipaddr.IPv4 | ipaddr.IPv6, number] {
  if (typeof entry !== 'string') throw new TypeError(`${name}: expected a CIDR string`);
  const slash = entry.indexOf('/');
  const ipText = slash < 0 ? entry : entry.slice(0, slash);
  const addr = parseStrictAddress(ipText);
  if (addr === undefined) throw new TypeError(`${name}: ${JSON.stringify(entry)} is not an IP address or CIDR`);
  const max = addr.kind() === 'ipv4' ? 32 : 128;
  if (slash < 0) return [addr, max];
  const bitsText = entry.slice(slash + 1);
  if (!/^(?:0|[1-9][0-9]{0,2})$/.test(bitsText) || Number(bitsText) > max) {
    throw new TypeError(`${name}: ${JSON.stringify(entry)} has a prefix length outside 0–${max}`);
  }
  return [addr, Number(bitsText)];
}
