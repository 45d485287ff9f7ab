import { describe, expect, it } from 'vitest';
import { addressBucket } from '../../src/transport/index.js';
import { HOSTILE_VALUES } from '../support/hostile-values.js';

/** security: L6 — per-IP limits on dial-outs must not be escaped by walking an IPv6 /64. */
describe('addressBucket (the per-IP rate-limit key)', () => {
  it.each([
    ['IPv4', '192.0.2.7', '192.0.2.7'],
    ['IPv4-mapped IPv6', '::ffff:192.0.2.7', '192.0.2.7'],
    ['IPv6, one host', '2001:db8:1:2:3:4:5:6', '2001:db8:1:2::/64'],
    ['IPv6, another host in the same /64', '2001:db8:1:2:ffff:ffff:ffff:ffff', '2001:db8:1:2::/64'],
    ['IPv6 written short', '2001:db8::1', '2001:db8:0:0::/64'],
    ['IPv6 loopback', '::1', '0:0:0:0::/64'],
    ['not an address', 'unknown', 'unknown'],
  ])('%s', (_name, ip, bucket) => {
    expect(addressBucket(ip)).toBe(bucket);
  });

  it('puts two /64s apart', () => {
    expect(addressBucket('2001:db8:1:2::1')).not.toBe(addressBucket('2001:db8:1:3::1'));
  });

  it.each(HOSTILE_VALUES)('never throws for %s', (_name, value) => {
    expect(typeof addressBucket(value)).toBe('string');
  });
});
