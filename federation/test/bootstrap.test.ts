import type { BootstrapDescriptor } from '@parley/schemas';
import { describe, expect, it } from 'vitest';
import { AddressBook, AnnounceLimiter, buildDescriptor, networkGroup, verifyDescriptor } from '../src/bootstrap/index.js';
import { canonicalJson } from '../src/canonical/index.js';
import { signatureEntry } from '../src/events/signatures.js';
import { generateSigningKey, keyRingOf, type SigningKey } from '../src/keys/index.js';

const NOW = Date.parse('2026-12-06T00:00:00Z');
const DAY = 86_400_000;

function descriptor(
  serverName: string,
  host: string,
  key: SigningKey,
  now = NOW,
  extra: Partial<Parameters<typeof buildDescriptor>[0]> = {},
) {
  return buildDescriptor({
    serverName,
    key,
    endpoints: [{ host, port: 8448 }],
    tlsFingerprints: [],
    capabilities: ['relay'],
    now,
    validForMs: DAY,
    ...extra,
  });
}

/** A deterministic PRNG (mulberry32): fakes are for randomness only. */
function prng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('bootstrap descriptors', () => {
  const key = generateSigningKey();
  const ring = keyRingOf({ 'a.example': { [key.keyId]: key.publicKey } });

  it('a descriptor verifies against the key of the server it names', () => {
    const d = descriptor('a.example', '198.51.100.7', key);
    expect(verifyDescriptor(d, ring, NOW)).toMatchObject({ ok: true });
  });

  it('refuses tampered, re-signed by another key, expired, future and over-long descriptors', () => {
    const d = descriptor('a.example', '198.51.100.7', key);
    const tampered = { ...d, endpoints: [{ host: '203.0.113.9', port: 8448 }] };
    expect(verifyDescriptor(tampered, ring, NOW)).toMatchObject({ ok: false, kind: 'signature' });

    // Another key signs a descriptor naming a.example (and lists itself as a.example's key):
    // the ring holds a.example's real key, so it is refused.
    const mallory = generateSigningKey();
    const forged = descriptor('a.example', '203.0.113.9', mallory);
    expect(verifyDescriptor(forged, ring, NOW)).toMatchObject({ ok: false, kind: 'signature' });

    expect(verifyDescriptor(d, ring, NOW + 2 * DAY)).toMatchObject({ ok: false, kind: 'expired' });
    const future = descriptor('a.example', '198.51.100.7', key, NOW + 3_600_000);
    expect(verifyDescriptor(future, ring, NOW)).toMatchObject({ ok: false, kind: 'future' });

    // Validity beyond 7 days, signed by the real key: still refused.
    const { signatures: _s, ...body } = d;
    const long = { ...body, valid_until_ts: NOW + 30 * DAY };
    const signed = { ...long, signatures: { 'a.example': signatureEntry(Buffer.from(canonicalJson(long)), key) } };
    expect(verifyDescriptor(signed, ring, NOW)).toMatchObject({ ok: false, kind: 'malformed' });

    for (const hostile of [null, 7, 'x', {}, { ...d, server_name: 'not a name' }, { ...d, extra: 1 }, { ...d, endpoints: [] }]) {
      expect(verifyDescriptor(hostile, ring, NOW)).toMatchObject({ ok: false, kind: 'malformed' });
    }
  });

  it('network groups follow addrman (/16, /32, registrable domain)', () => {
    expect(networkGroup('198.51.100.7')).toBe('ipv4:198.51');
    expect(networkGroup('198.51.3.1')).toBe('ipv4:198.51');
    expect(networkGroup('::ffff:198.51.100.7')).toBe('ipv4:198.51');
    expect(networkGroup('[2001:db8:1:2::5]')).toBe('ipv6:2001:0db8');
    expect(networkGroup('chat.example.org')).toBe('dns:example.org');
    expect(networkGroup('Other.EXAMPLE.org.')).toBe('dns:example.org');
  });
});

describe('address book (addrman rules)', () => {
  const key = generateSigningKey();
  const book = (seed = 1, clock = { t: NOW }) =>
    new AddressBook({ secret: new Uint8Array(32).fill(seed), now: () => clock.t, random: prng(seed) });

  it('keeps a newer descriptor and refuses replays of older or equal ones', () => {
    const b = book();
    const first = descriptor('a.example', '198.51.100.7', key, NOW - 1000);
    expect(b.add(first, { name: 'seed', host: '' }).kind).toBe('added');
    expect(b.add(first, { name: 'p.example', host: '192.0.2.1' }).kind).toBe('replay');
    expect(b.add(descriptor('a.example', '198.51.100.7', key, NOW - 5000), { name: 'seed', host: '' }).kind).toBe('replay');
    expect(b.add(descriptor('a.example', '198.51.100.8', key, NOW), { name: 'seed', host: '' }).kind).toBe('updated');
    expect(b.get('a.example')?.descriptor.endpoints[0]?.host).toBe('198.51.100.8');
  });

  it('eclipse: one source group announcing thousands fills at most its buckets, and evicts no honest entry', () => {
    const clock = { t: NOW };
    const b = book(7, clock);
    // 300 honest servers from many groups, heard from many peers, 60 of them tried.
    const honest: string[] = [];
    for (let i = 0; i < 300; i++) {
      const name = `honest${i}.example`;
      const d = descriptor(name, `10.${i % 250}.${i}.1`.replace(/\.(\d{3,})\./, '.1.'), key);
      const out = b.add(d, { name: `peer${i % 40}.example`, host: `172.${16 + (i % 16)}.${i % 200}.1` });
      if (out.kind === 'added') honest.push(name);
    }
    for (const name of honest.slice(0, 60)) b.good(name);
    for (const c of b.collisions()) b.resolveCollision(c.newcomer, true);
    const honestNew = honest.filter((n) => b.get(n)?.table === 'new');
    const honestTried = honest.filter((n) => b.get(n)?.table === 'tried');

    // The attacker: 5,000 descriptors with addresses spread over 200 /16s, all announced by
    // peers in one /16 (its own network).
    let attackerAdded = 0;
    for (let i = 0; i < 5000; i++) {
      const d = descriptor(`evil${i}.attacker.test`, `${10 + (i % 200)}.${(i >> 3) % 256}.7.${i % 256}`, key);
      if (b.add(d, { name: `evil-peer${i % 50}.attacker.test`, host: `203.0.${i % 256}.1` }).kind === 'added') attackerAdded++;
    }
    const share = b.shareOf('ipv4:203.0');
    expect(attackerAdded).toBe(share.new);
    // At most its new buckets' worth of slots: newBucketsPerSourceGroup × bucketSize.
    expect(share.new).toBeLessThanOrEqual(b.newBucketsPerSourceGroup * b.bucketSize);
    // Every honest entry is still where it was.
    expect(honest.filter((n) => b.get(n)?.table === 'new')).toEqual(honestNew);

    // The attacker's servers all answer: they try to enter tried, and collide with honest
    // incumbents, which are tested and still answer — so none of them is evicted.
    for (let i = 0; i < 5000; i++) if (b.get(`evil${i}.attacker.test`)) b.good(`evil${i}.attacker.test`);
    for (const c of b.collisions()) b.resolveCollision(c.newcomer, !c.incumbent.includes('attacker'));
    expect(honest.filter((n) => b.get(n)?.table === 'tried')).toEqual(honestTried);
    const attackerTried = b.entries().filter((e) => e.table === 'tried' && e.serverName.endsWith('.attacker.test')).length;
    // Only slots no answering honest server held: the tried table minus the honest ones.
    expect(attackerTried).toBeLessThanOrEqual(share.triedSlots - honestTried.length);
    console.log(
      `eclipse figures: attacker source group holds ${share.new}/${share.newSlots} new slots (${((100 * share.new) / share.newSlots).toFixed(1)} %) ` +
        `and ${attackerTried}/${share.triedSlots} tried slots (${((100 * attackerTried) / share.triedSlots).toFixed(1)} %, all of them slots no honest server held); ` +
        `honest kept: ${honestNew.length} new, ${honestTried.length} tried`,
    );
  });

  it('eclipse from one /16: 5,000 servers in it, announced from it, reach at most 16 new and 4 tried buckets', () => {
    const b = book(11);
    const honest: string[] = [];
    for (let i = 0; i < 300; i++) {
      const name = `honest${i}.example`;
      const out = b.add(descriptor(name, `${11 + (i % 180)}.${i % 256}.1.1`, key), {
        name: `peer${i % 40}.example`,
        host: `172.${16 + (i % 16)}.${i % 200}.1`,
      });
      if (out.kind === 'added') honest.push(name);
    }
    for (const name of honest.slice(0, 60)) b.good(name);
    for (const c of b.collisions()) b.resolveCollision(c.newcomer, true);
    const honestTried = honest.filter((n) => b.get(n)?.table === 'tried');
    const honestNew = honest.filter((n) => b.get(n)?.table === 'new');

    // Every attacker address and every announcing peer in 203.0.0.0/16; all of them answer.
    for (let i = 0; i < 5000; i++) {
      const d = descriptor(`evil${i}.attacker.test`, `203.0.${i % 256}.${1 + (i >> 8)}`, key);
      b.add(d, { name: `evil-peer${i % 50}.attacker.test`, host: `203.0.${i % 256}.1` });
    }
    const evil = () => b.entries().filter((e) => e.serverName.endsWith('.attacker.test'));
    const newBuckets = new Set(evil().map((e) => e.bucket));
    expect(newBuckets.size).toBeLessThanOrEqual(b.newBucketsPerSourceGroup);
    expect(evil().length).toBeLessThanOrEqual(b.newBucketsPerSourceGroup * b.bucketSize);
    for (const e of evil()) b.good(e.serverName);
    for (const c of b.collisions()) b.resolveCollision(c.newcomer, !c.incumbent.includes('attacker'));
    const evilTried = evil().filter((e) => e.table === 'tried');
    expect(new Set(evilTried.map((e) => e.bucket)).size).toBeLessThanOrEqual(b.triedBucketsPerGroup);
    expect(evilTried.length).toBeLessThanOrEqual(b.triedBucketsPerGroup * b.bucketSize);
    expect(honest.filter((n) => b.get(n)?.table === 'tried')).toEqual(honestTried);
    expect(honest.filter((n) => b.get(n)?.table === 'new' || b.get(n)?.table === 'tried').length).toBe(honest.length);
    const total = b.size;
    console.log(
      `eclipse figures (one /16 announcing 5,000 of its own): ${newBuckets.size} new bucket(s) reached, ` +
        `${evil().length - evilTried.length}/${b.newBuckets * b.bucketSize} new slots left after promotion, ` +
        `${evilTried.length}/${b.triedBuckets * b.bucketSize} tried slots (${((100 * evilTried.length) / (b.triedBuckets * b.bucketSize)).toFixed(1)} %); ` +
        `${evil().length} of the ${total} entries held (${((100 * evil().length) / total).toFixed(1)} %); ` +
        `honest kept: ${honestNew.length} new, ${honestTried.length} tried, none evicted`,
    );
  });

  it('a terrible occupant (failing for a week) gives up its slot; an answering one does not', () => {
    const clock = { t: NOW };
    const b = new AddressBook({
      secret: new Uint8Array(32).fill(3),
      now: () => clock.t,
      random: prng(3),
      newBuckets: 1,
      bucketSize: 1,
      newBucketsPerSourceGroup: 1,
    });
    expect(b.add(descriptor('old.example', '198.51.1.1', key, NOW, { validForMs: 7 * DAY }), { name: 'seed', host: '' }).kind).toBe(
      'added',
    );
    expect(b.add(descriptor('next.example', '198.51.1.2', key), { name: 'seed', host: '' }).kind).toBe('bucket_full');
    for (let i = 0; i < 3; i++) b.failed('old.example');
    clock.t += 8 * DAY;
    expect(b.add(descriptor('next.example', '198.51.1.2', key, clock.t), { name: 'seed', host: '' }).kind).toBe('added');
    expect(b.get('old.example')).toBeUndefined();
  });

  it('test-before-evict: a tried incumbent that no longer answers gives its slot to the newcomer', () => {
    const b = new AddressBook({
      secret: new Uint8Array(32).fill(4),
      now: () => NOW,
      random: prng(4),
      triedBuckets: 1,
      bucketSize: 1,
      triedBucketsPerGroup: 1,
    });
    b.add(descriptor('first.example', '198.51.1.1', key), { name: 'seed', host: '' });
    b.add(descriptor('second.example', '198.51.1.2', key), { name: 'p.example', host: '192.0.2.1' });
    expect(b.good('first.example').moved).toBe(true);
    expect(b.good('second.example').collision).toEqual({ newcomer: 'second.example', incumbent: 'first.example' });
    b.resolveCollision('second.example', false);
    expect(b.get('second.example')?.table).toBe('tried');
    expect(b.get('first.example')?.table ?? 'dropped').not.toBe('tried');
  });

  it('survives a restart through its cache (anchors too), refuses a cache older than 24 h', () => {
    const clock = { t: NOW };
    const b = book(5, clock);
    for (let i = 0; i < 20; i++) b.add(descriptor(`s${i}.example`, `198.51.${i}.1`, key), { name: 'seed', host: '' });
    b.good('s1.example');
    b.good('s2.example');
    b.setAnchors(['s1.example', 's2.example']);
    const saved = JSON.parse(JSON.stringify(b.toJSON()));
    const again = book(5, clock);
    expect(again.load(saved, DAY)).toBe(true);
    expect(again.size).toBe(b.size);
    expect(again.anchors()).toEqual(['s1.example', 's2.example']);
    expect(again.get('s1.example')?.table).toBe('tried');
    clock.t += DAY + 1;
    expect(book(5, clock).load(saved, DAY)).toBe(false);
  });

  it('feelers probe only unproven ("new") entries, and none once every entry answered', () => {
    const b = book(8);
    for (let i = 0; i < 6; i++) b.add(descriptor(`f${i}.example`, `198.${60 + i}.1.1`, key), { name: 'seed', host: '' });
    b.good('f0.example');
    b.good('f1.example');
    const picked = new Set(Array.from({ length: 200 }, () => b.feeler()?.serverName));
    expect([...picked].sort()).toEqual(['f2.example', 'f3.example', 'f4.example', 'f5.example']);
    for (let i = 2; i < 6; i++) b.good(`f${i}.example`);
    for (const c of b.collisions()) b.resolveCollision(c.newcomer, true);
    expect(b.entries().filter((e) => e.table === 'new')).toEqual([]);
    expect(b.feeler()).toBeNull();
  });

  it('finds servers by capability', () => {
    const b = book(6);
    b.add(descriptor('relay.example', '198.51.1.1', key, NOW, { capabilities: ['relay'] }), { name: 'seed', host: '' });
    b.add(descriptor('mirror.example', '198.52.1.1', key, NOW, { capabilities: ['mirror', 'mailbox'] }), { name: 'seed', host: '' });
    expect(b.select(5, { capability: 'mailbox' }).map((e) => e.serverName)).toEqual(['mirror.example']);
    expect(
      b
        .select(5)
        .map((e) => e.serverName)
        .sort(),
    ).toEqual(['mirror.example', 'relay.example']);
  });

  it('rate-limits announcements per peer', () => {
    const clock = { t: NOW };
    const limiter = new AnnounceLimiter(100, 10, () => clock.t);
    expect(limiter.take('p.example', 250)).toBe(100);
    expect(limiter.take('p.example', 10)).toBe(0);
    expect(limiter.take('q.example', 10)).toBe(10);
    clock.t += 60_000;
    expect(limiter.take('p.example', 50)).toBe(10);
  });
});

export type { BootstrapDescriptor };
