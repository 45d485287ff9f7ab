import { describe, expect, it } from 'vitest';
import { eventId as idOf, signEvent, type UnsignedEvent, verifyEvent } from '../src/events/index.js';
import { generateSigningKey, keyRingOf } from '../src/keys/index.js';

const server = 'a.example';
const key = generateSigningKey();
const ring = keyRingOf({ [server]: { [key.keyId]: key.publicKey } });
const draft: UnsignedEvent = {
  room_id: '!room:b.example',
  type: 'room.message',
  sender: '@alice:a.example',
  origin: server,
  origin_ts: 1_700_000_000_000,
  lamport: 3,
  content: { body: 'hello' },
};

/**
 * verifyEvent's `trusted`: event IDs whose signed bytes a server already checked (or signed
 * itself) skip the ed25519 check, and nothing else.
 */
describe('verifyEvent with trusted event IDs', () => {
  it('skips the signature only for a trusted ID', () => {
    const { event, eventId } = signEvent(draft, server, key);
    const unsigned = { ...event, signatures: { [server]: { [`ed25519:${key.keyId}`]: 'A'.repeat(86) } } };
    expect(verifyEvent(unsigned, ring).ok).toBe(false);
    expect(verifyEvent(unsigned, ring, { trusted: new Set([eventId]) })).toEqual({ ok: true, eventId, redacted: false });
    expect(verifyEvent(unsigned, ring, { trusted: new Set(['$someOtherEvent']) }).ok).toBe(false);
  });

  it('still checks the content hash, the origin and the shape of a trusted event', () => {
    const { event, eventId } = signEvent(draft, server, key);
    const trusted = new Set([eventId]);
    // Altered content keeps the ID (the ID covers the content hash, not the content).
    const altered = { ...event, content: { body: 'changed' } };
    expect(verifyEvent(altered, ring, { trusted })).toMatchObject({ ok: false, kind: 'content_hash' });
    // An origin vouching for another server's user is refused whatever the trust.
    const otherOrigin = { ...event, sender: '@mallory:c.example' };
    expect(verifyEvent(otherOrigin, ring, { trusted: new Set([idOf(otherOrigin)]) })).toMatchObject({
      ok: false,
      kind: 'signature',
    });
    expect(verifyEvent({ ...event, lamport: -1 }, ring, { trusted }).ok).toBe(false);
  });
});
