import { describe, expect, it } from 'vitest';
import { AddressPolicy, isPublicAddress } from '../../src/transport/index.js';
import { HOSTILE_VALUES } from '../support/hostile-values.js';
import vectors from './vectors/ssrf.json' with { type: 'json' };

describe('isPublicAddress', () => {
  it.each(vectors.public)('accepts %s (%s)', (ip) => {
    expect(isPublicAddress(ip)).toBe(true);
  });

  it.each(vectors.refused)('refuses %s (%s)', (ip) => {
    expect(isPublicAddress(ip)).toBe(false);
  });

  it.each(HOSTILE_VALUES)('returns false for %s', (_name, value) => {
    expect(isPublicAddress(value)).toBe(false);
  });
});

describe('AddressPolicy', () => {
  describe.each(vectors.policy)('allowlist $allow', ({ allow, allowed, refused }) => {
    const policy = new AddressPolicy({ allow });
    it.each(allowed)('allows %s', (ip) => expect(policy.allowed(ip)).toBe(true));
    it.each(refused)('refuses %s', (ip) => expect(policy.allowed(ip)).toBe(false));
  });

  it.each(vectors.badAllowEntries)('refuses the allowlist entry %j with a TypeError naming it', (entry) => {
    expect(() => new AddressPolicy({ allow: ['10.0.0.0/8', entry] })).toThrow(/^allow\[1\]: /);
  });

  it('refuses an allowlist that is not an array, and entries that are not strings', () => {
    expect(() => new AddressPolicy({ allow: '127.0.0.0/8' as never })).toThrow(TypeError);
    expect(() => new AddressPolicy({ allow: [42 as never] })).toThrow(/allow\[0\]/);
  });

  it('reports its allowlist normalised', () => {
    expect(new AddressPolicy({ allow: ['127.0.0.0/8', '::1', '0:0::1/128'] }).allowlist).toEqual(['127.0.0.0/8', '::1/128', '::1/128']);
  });

  it.each(HOSTILE_VALUES)('refuses %s as an address', (_name, value) => {
    expect(new AddressPolicy({ allow: ['0.0.0.0/0', '::/0'] }).allowed(value)).toBe(false);
  });
});
