import { createHash } from 'node:crypto';
import { MAX_CONTENT_BYTES, MAX_EVENT_BYTES, type RoomEvent } from '@parley/schemas';
import { getPublicKey, verifyEd25519 } from '@parley/sdk';
import { describe, expect, it } from 'vitest';
import {
  checkEventSize,
  contentHash,
  eventId,
  isRedacted,
  recordHash,
  redact,
  referenceHash,
  signEvent,
  signRecord,
  type UnsignedEvent,
  verifyEvent,
  verifyRecord,
} from '../src/events/index.js';
import { generateSigningKey, keyRingOf, signingKeyFromSeed } from '../src/keys/index.js';
import { HOSTILE_VALUES } from './support/hostile-values.js';
import vectors from './vectors/signing.json' with { type: 'json' };

const seed = Buffer.from(vectors.seed, 'hex');
const key = signingKeyFromSeed(seed, vectors.key_id);
const ring = keyRingOf({ [vectors.server]: { [vectors.key_id]: key.publicKey } });
const sigName = `ed25519:${vectors.key_id}`;

describe('signing vectors (signing.json)', () => {
  it.each(vectors.events.map((v) => [v.name, v]))('%s: content hash, redacted form, event ID and signature', (_name, v) => {
    const event = v.event as UnsignedEvent;
    expect(contentHash(event)).toBe(v.content_hash);
    const signed = signEvent(event, vectors.server, key);
    expect(signed.event.hashes.sha256).toBe(v.content_hash);
    expect(signed.event.signatures).toEqual({ [vectors.server]: { [sigName]: v.signature } });
    expect(signed.eventId).toBe(v.event_id);
    expect(eventId(signed.event)).toBe(v.event_id);
    expect(redact(signed.event)).toEqual(v.redacted);
    expect(verifyEvent(signed.event, ring)).toEqual({ ok: true, eventId: v.event_id, redacted: false });
    // The redacted form keeps its ID and signature.
    expect(eventId(v.redacted as RoomEvent)).toBe(v.event_id);
    expect(verifyEvent(v.redacted, ring, { allowRedacted: true })).toMatchObject({ ok: true, eventId: v.event_id });
  });

  it.each(vectors.records.map((r, i) => [i + 1, r]))('record seq %i: hash and signature', (_seq, r) => {
    const signed = signRecord(r.fields, vectors.server, key);
    expect(signed.signatures).toEqual({ [vectors.server]: { [sigName]: r.signature } });
    expect(recordHash(signed)).toBe(r.hash);
    expect(verifyRecord(signed, vectors.server, ring)).toEqual({ ok: true, hash: r.hash });
  });
});

// The vectors above come from this implementation; these recompute them from hand-written
// canonical text, node's SHA-256 and noble's Ed25519, sharing no code with src/.
describe('independent recomputation', () => {
  const b64u = (s: string) => createHash('sha256').update(s, 'utf8').digest('base64url');
  const v = vectors.events[0]!;
  // RFC 8785 by hand: keys sorted, no whitespace, é and 😀 raw, " \ and newline escaped.
  const covered =
    '{"content":{"body":"h\u00e9llo \\"w\\\\orld\\"\\n\u{1F600}","msgtype":"text"},"lamport":1,"origin":"a.test",' +
    '"origin_ts":1700000000000,"room_id":"!vectors:a.test","sender":"@alice:a.test","type":"room.message"}';
  const signedForm =
    `{"content":{},"hashes":{"sha256":"${v.content_hash}"},"lamport":1,"origin":"a.test",` +
    '"origin_ts":1700000000000,"room_id":"!vectors:a.test","sender":"@alice:a.test","type":"room.message"}';

  it('content hash is SHA-256 of the canonical event without signatures, unsigned and hashes', () => {
    expect(b64u(covered)).toBe(v.content_hash);
  });

  it('event ID is $ + SHA-256 of the canonical redacted form', () => {
    expect('$' + b64u(signedForm)).toBe(v.event_id);
  });

  it('the signature verifies with noble over the same bytes, under the key from the seed', () => {
    const publicKey = getPublicKey(new Uint8Array(seed));
    expect(Buffer.from(publicKey).toString('base64url')).toBe(vectors.public_key);
    const signature = new Uint8Array(Buffer.from(v.signature, 'base64url'));
    expect(verifyEd25519(signature, new TextEncoder().encode(signedForm), publicKey)).toBe(true);
  });

  it('record hash and host signature over the canonical record', () => {
    const r = vectors.records[1]!;
    const text = `{"event_id":"${r.fields.event_id}","host_ts":1700000000600,"prev":"${vectors.records[0]!.hash}","room_id":"!vectors:a.test","seq":2}`;
    expect(b64u(text)).toBe(r.hash);
    const signature = new Uint8Array(Buffer.from(r.signature, 'base64url'));
    expect(verifyEd25519(signature, new TextEncoder().encode(text), getPublicKey(new Uint8Array(seed)))).toBe(true);
    const first = vectors.records[0]!;
    expect(b64u(`{"event_id":"${first.fields.event_id}","host_ts":1700000000500,"prev":null,"room_id":"!vectors:a.test","seq":1}`)).toBe(
      first.hash,
    );
  });
});

const message = (body: string, extra: Partial<UnsignedEvent> = {}): UnsignedEvent => ({
  room_id: '!room:a.test',
  type: 'room.message',
  sender: '@alice:a.test',
  origin: 'a.test',
  origin_ts: 1,
  lamport: 1,
  content: { body },
  ...extra,
});

describe('verifyEvent', () => {
  const { event } = signEvent(message('hi', { unsigned: { txn_id: 'x' } }), 'a.test', key);

  it('ignores unsigned, which is not signed', () => {
    expect(verifyEvent({ ...event, unsigned: { txn_id: 'changed', age: 5 } }, ring)).toMatchObject({ ok: true });
  });

  it.each<[string, (e: RoomEvent) => unknown, string, RegExp]>([
    ['changed content', (e) => ({ ...e, content: { body: 'ho' } }), 'content_hash', /^content hash mismatch$/],
    ['content stripped without allowRedacted', (e) => redact(e), 'content_hash', /^content hash mismatch$/],
    ['changed hashes', (e) => ({ ...e, hashes: { sha256: contentHash(message('ho')) } }), 'signature', /^bad signature by a.test$/],
    ['changed origin_ts', (e) => ({ ...e, origin_ts: 2 }), 'signature', /^bad signature/],
    ['no signature by the origin', (e) => ({ ...e, signatures: {} }), 'signature', /^no signature by a.test$/],
    [
      'an unknown key',
      (e) => ({ ...e, signatures: { 'a.test': { 'ed25519:other': e.signatures['a.test']![sigName]! } } }),
      'signature',
      /no known key/,
    ],
    [
      'signed by another server',
      (e) => ({ ...e, origin: 'b.test', signatures: { 'b.test': e.signatures['a.test']! } }),
      'signature',
      /not the server of sender/,
    ],
    ['sender of another server', (e) => ({ ...e, sender: '@mallory:b.test' }), 'signature', /not the server of sender/],
    [
      'a padded signature',
      (e) => ({ ...e, signatures: { 'a.test': { [sigName]: `${e.signatures['a.test']![sigName]}==` } } }),
      'malformed',
      /signatures/,
    ],
    ['an event_id member', (e) => ({ ...e, event_id: '$x' }), 'malformed', /event_id is not a known field/],
    ['a fraction in content', (e) => ({ ...e, content: { body: 'hi', n: 1.5 } }), 'malformed', /event.content.n: 1.5 is not an integer/],
    ['a NUL in content', (e) => ({ ...e, content: { body: 'a\u0000' } }), 'malformed', /NUL/],
  ])('refuses %s as %s', (_name, tamper, kind, reason) => {
    const result = verifyEvent(tamper(structuredClone(event)), ring);
    expect(result).toMatchObject({ ok: false, kind });
    if (!result.ok) expect(result.reason).toMatch(reason);
  });

  it('accepts a redacted copy only when asked, and says so', () => {
    const redacted = redact(event);
    expect(isRedacted(redacted)).toBe(true);
    expect(isRedacted({ ...redacted, unsigned: { redacted_because: '$x' } })).toBe(true);
    expect(isRedacted(event)).toBe(false);
    const id = eventId(event);
    expect(verifyEvent(redacted, ring, { allowRedacted: true })).toEqual({ ok: true, eventId: id, redacted: true });
    // A redacted copy whose hashes were also changed no longer carries the origin's signature.
    expect(verifyEvent({ ...redacted, hashes: { sha256: 'AAAA' } }, ring, { allowRedacted: true })).toMatchObject({
      ok: false,
      kind: 'signature',
    });
  });

  it('accepts a signature under any known key of the origin, ignoring junk under unknown ones', () => {
    const junk = { ...event, signatures: { 'a.test': { ...event.signatures['a.test'], 'ed25519:old': 'AAAA' } } };
    expect(verifyEvent(junk, ring)).toMatchObject({ ok: true });
  });

  it('survives a key ring that throws', () => {
    const throwing = () => {
      throw new Error('network down');
    };
    expect(verifyEvent(event, throwing)).toMatchObject({ ok: false, kind: 'signature' });
  });

  it.each(HOSTILE_VALUES)('returns a failure, never throws, for %s as the event or the key ring', (_name, bad) => {
    expect(verifyEvent(bad, ring)).toMatchObject({ ok: false });
    expect(verifyEvent(event, bad as never)).toMatchObject({ ok: false });
    expect(verifyEvent({ ...event, content: bad }, ring)).toMatchObject({ ok: false });
    expect(verifyEvent({ ...event, signatures: { 'a.test': { [sigName]: bad } } }, ring)).toMatchObject({ ok: false });
  });
});

describe('signEvent', () => {
  it('keeps other servers signatures, replaces its own, and drops nothing else', () => {
    const other = generateSigningKey();
    const first = signEvent(message('hi'), 'a.test', other).event;
    const withForeign = { ...first, signatures: { ...first.signatures, 'c.test': { 'ed25519:z': 'AAAA' } } };
    const again = signEvent(withForeign, 'a.test', key);
    expect(Object.keys(again.event.signatures['a.test']!)).toEqual([sigName]);
    expect(again.event.signatures['c.test']).toEqual({ 'ed25519:z': 'AAAA' });
    expect(again.eventId).toBe(signEvent(message('hi'), 'a.test', key).eventId);
  });

  it.each<[string, () => unknown, RegExp]>([
    ['a non-object event', () => signEvent(null as never, 'a.test', key), /^event: expected an object$/],
    ['a missing field', () => signEvent({ ...message('x'), room_id: undefined } as never, 'a.test', key), /^event: room_id is required$/],
    ['a bad room ID', () => signEvent(message('x', { room_id: 'room' }), 'a.test', key), /^event: room_id/],
    [
      'a fraction in content',
      () => signEvent(message('x', { content: { n: 0.5 } }), 'a.test', key),
      /^event.content.n: 0.5 is not an integer$/,
    ],
    ['undefined in content', () => signEvent(message('x', { content: { n: undefined } }), 'a.test', key), /^event.content.n: undefined/],
    [
      'an origin unlike the sender',
      () => signEvent(message('x', { origin: 'b.test' }), 'b.test', key),
      /^event: origin b.test is not the server of @alice:a.test$/,
    ],
    [
      'a server that is not the origin',
      () => signEvent(message('x'), 'b.test', key),
      /^serverName: b.test is not the event's origin a.test$/,
    ],
    ['a bad key', () => signEvent(message('x'), 'a.test', { keyId: 'bad-id' } as never), /^key: /],
    ['a key that cannot sign', () => signEvent(message('x'), 'a.test', { ...key, privateKey: key.publicKey }), /^privateKey: /],
  ])('throws a TypeError for %s', (_name, act, message) => {
    expect(act).toThrow(TypeError);
    expect(act).toThrow(message);
  });

  it.each(HOSTILE_VALUES)('throws a TypeError for %s in any parameter', (_name, bad) => {
    expect(() => signEvent(bad as never, 'a.test', key)).toThrow(TypeError);
    expect(() => signEvent(message('x'), bad as never, key)).toThrow(TypeError);
    expect(() => signEvent(message('x'), 'a.test', bad as never)).toThrow(TypeError);
  });
});

describe('size caps (docs/protocol.md)', () => {
  // room.message bodies are schema-limited to 40,000 characters; a custom type is not.
  const big = (bytes: number) => message('', { type: 'org.example.blob', content: { data: 'x'.repeat(bytes - '{"data":""}'.length) } });

  it('accepts content of exactly MAX_CONTENT_BYTES and refuses one byte more', () => {
    const signed = signEvent(big(MAX_CONTENT_BYTES), 'a.test', key).event;
    expect(checkEventSize(signed)).toMatchObject({ ok: true, contentBytes: MAX_CONTENT_BYTES });
    expect(verifyEvent(signed, ring)).toMatchObject({ ok: true });
    expect(() => signEvent(big(MAX_CONTENT_BYTES + 1), 'a.test', key)).toThrow(
      new TypeError(`event.content is ${MAX_CONTENT_BYTES + 1} bytes, more than the ${MAX_CONTENT_BYTES} allowed`),
    );
  });

  it('counts UTF-8 bytes, not characters', () => {
    const e = message('', { type: 'org.example.blob', content: { data: '\u00e9'.repeat(MAX_CONTENT_BYTES / 2) } });
    expect(checkEventSize(e)).toMatchObject({ ok: false, tooLarge: true });
  });

  it('refuses an event over MAX_EVENT_BYTES even when its content fits', () => {
    const signed = signEvent(message('x'), 'a.test', key).event;
    const padded = { ...signed, signatures: { ...signed.signatures, 'junk.test': { 'ed25519:j': 'A'.repeat(MAX_EVENT_BYTES) } } };
    expect(checkEventSize(padded)).toMatchObject({ ok: false, tooLarge: true });
    expect(verifyEvent(padded, ring)).toMatchObject({ ok: false, kind: 'size' });
  });

  it('does not count unsigned', () => {
    const signed = signEvent(message('x'), 'a.test', key).event;
    expect(checkEventSize({ ...signed, unsigned: { pad: 'x'.repeat(MAX_EVENT_BYTES) } })).toMatchObject({ ok: true });
  });

  it.each(HOSTILE_VALUES)('never throws for %s', (_name, bad) => {
    expect(checkEventSize(bad as never).ok).toBe(false);
  });
});

describe('redact', () => {
  it('keeps only the listed top-level members and content keys, without touching its input', () => {
    const event = {
      ...message('secret'),
      type: 'room.member',
      state_key: '@alice:a.test',
      content: { membership: 'join', displayname: 'A', reason: 'r' },
      hashes: { sha256: 'h' },
      signatures: {},
      unsigned: { txn_id: 't' },
      extra: 1,
    } as unknown as RoomEvent;
    const copy = structuredClone(event);
    const r = redact(event);
    expect(Object.keys(r).sort()).toEqual(
      ['content', 'hashes', 'lamport', 'origin', 'origin_ts', 'room_id', 'sender', 'signatures', 'state_key', 'type'].sort(),
    );
    expect(r.content).toEqual({ membership: 'join' });
    expect(event).toEqual(copy);
  });

  it('keeps a hostile __proto__ content key as data and finds no keeps list on Object.prototype', () => {
    const content = JSON.parse('{"__proto__":{"membership":"x"},"join_rule":"public"}');
    expect(redact({ ...message(''), type: 'room.join_rules', content } as UnsignedEvent).content).toEqual({ join_rule: 'public' });
    expect(redact({ ...message(''), type: 'constructor', content: { a: 1 } } as UnsignedEvent).content).toEqual({});
    const all = redact({ ...message(''), type: 'room.create', content } as UnsignedEvent).content;
    expect(Object.getPrototypeOf(all)).toBe(Object.prototype);
    expect(Object.keys(all)).toEqual(['__proto__', 'join_rule']);
  });

  it('security: L9 redaction keeps room.encryption whole, so it cannot turn encryption off', () => {
    const content = { algorithm: 'mls', rotation_period_ms: 604800000 };
    const event = { ...message(''), type: 'room.encryption', state_key: '', content } as UnsignedEvent;
    expect(redact(event).content).toEqual(content);
    expect(isRedacted(event)).toBe(true);
  });

  it('referenceHash and eventId agree', () => {
    const { event } = signEvent(message('x'), 'a.test', key);
    expect(eventId(event)).toBe('$' + referenceHash(event));
    expect(eventId(event)).toMatch(/^\$[A-Za-z0-9_-]{43}$/);
  });
});

describe('sequencing records', () => {
  const fields = { room_id: '!room:a.test', seq: 1, event_id: `$${'A'.repeat(43)}`, prev: null, host_ts: 5 };
  const record = signRecord(fields, 'a.test', key);

  it('verifies for the host and no one else', () => {
    expect(verifyRecord(record, 'a.test', ring)).toEqual({ ok: true, hash: recordHash(record) });
    expect(verifyRecord(record, 'b.test', ring)).toMatchObject({
      ok: false,
      kind: 'signature',
      reason: 'b.test is not the host of !room:a.test',
    });
  });

  it.each<[string, Record<string, unknown>, string]>([
    ['changed seq', { seq: 2 }, 'signature'],
    ['changed prev', { prev: 'AAAA' }, 'signature'],
    ['changed host_ts', { host_ts: 6 }, 'signature'],
    ['seq 0', { seq: 0 }, 'malformed'],
    ['an extra member', { extra: 1 }, 'malformed'],
    ['a bad event ID', { event_id: '$short' }, 'malformed'],
  ])('refuses %s as %s', (_name, change, kind) => {
    expect(verifyRecord({ ...record, ...change }, 'a.test', ring)).toMatchObject({ ok: false, kind });
  });

  it('signRecord only signs for the host, and names bad fields', () => {
    expect(() => signRecord(fields, 'b.test', key)).toThrow(new TypeError('hostName: b.test is not the host of !room:a.test'));
    expect(() => signRecord({ ...fields, seq: 0 }, 'a.test', key)).toThrow(/^fields: seq/);
    expect(() => signRecord({ ...fields, event_id: 'x' }, 'a.test', key)).toThrow(/^fields: event_id/);
  });

  it('hashes only the five signed members', () => {
    expect(recordHash(record)).toBe(recordHash({ ...fields }));
  });

  it.each(HOSTILE_VALUES)('verifyRecord never throws and signRecord throws a TypeError, for %s', (_name, bad) => {
    expect(verifyRecord(bad, 'a.test', ring)).toMatchObject({ ok: false });
    expect(verifyRecord(record, bad as never, ring)).toMatchObject({ ok: false });
    expect(verifyRecord(record, 'a.test', bad as never)).toMatchObject({ ok: false });
    expect(() => signRecord(bad as never, 'a.test', key)).toThrow(TypeError);
    expect(() => signRecord(fields, bad as never, key)).toThrow(TypeError);
    expect(() => signRecord(fields, 'a.test', bad as never)).toThrow(TypeError);
  });
});
