import net from 'node:net';

/**
 * The network group of an address, as Bitcoin Core's addrman defines it: servers in one group
 * are likely run by one party, so the address book spreads its slots across groups.
 * IPv4 → its /16, IPv6 → its /32, IPv4-mapped IPv6 → the IPv4 /16, a DNS name → its last
 * two labels (a registrable domain, approximately: `a.chat.example.org` and
 * `b.chat.example.org` share `example.org`).
 */
export function networkGroup(host: string): string {
  const bare = host.replace(/^\[|\]$/g, '').toLowerCase();
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(bare);
  const ip = mapped ? mapped[1] : bare;
  if (net.isIPv4(ip as string)) {
    const [a, b] = (ip as string).split('.');
    return `ipv4:${a}.${b}`;
  }
  if (net.isIPv6(bare)) {
    const full = expandIPv6(bare);
    return `ipv6:${full.slice(0, 2).join(':')}`;
  }
  const labels = bare.replace(/\.$/, '').split('.').filter(Boolean);
  return `dns:${labels.slice(-2).join('.')}`;
}

function expandIPv6(ip: string): string[] {
  const [head, tail] = ip.includes('::') ? ip.split('::') : [ip, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const fill = tail === undefined ? [] : Array.from({ length: 8 - h.length - t.length }, () => '0');
  return [...h, ...fill, ...t].map((x) => x.padStart(4, '0'));
}
