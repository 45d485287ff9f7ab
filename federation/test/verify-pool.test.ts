import { createPublicKey } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import {
  eventId,
  prepareCheckedEvent,
  prepareEvent,
  signEvent,
  signRecord,
  type UnsignedEvent,
  verifyEvent,
  verifyEventAsync,
  verifyRecord,
  verifyRecordAsync,
} from '../src/events/index.js';
import { generateSigningKey, keyRingOf, signBytes, VerifyPool, verifyBytes, verifyBytesAsync } from '../src/keys/index.js';

const key = generateSigningKey();
const other = generateSigningKey();
const message = (i: number) => Buffer.from(`message ${i}`.padEnd(300, '.'));
// The identity point: OpenSSL 3.0 accepts some forgeries under it, verifyBytes refuses it (weak-keys.ts).
const smallOrder = createPublicKey({
  key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(`01${'00'.repeat(31)}`, 'hex').toString('base64url') },
  format: 'jwk',
});

describe('VerifyPool: many Ed25519 checks on worker threads and the event loop', () => {
  const pool = new VerifyPool(1);
  afterAll(() => pool.close());

  it('gives verifyBytes’s verdict for every check of a large batch, the bad ones among thousands included', async () => {
    const n = 3000;
    const checks = Array.from({ length: n }, (_, i) => {
      const m = message(i);
      const signature = signBytes(m, key.privateKey);
      // Every 97th signature is by another key, every 101st covers other bytes, every 211th is short.
      if (i % 97 === 5) return { signature: signBytes(m, other.privateKey), message: m, key: key.publicKey };
      if (i % 101 === 7) return { signature, message: message(i + 1), key: key.publicKey };
      if (i % 211 === 11) return { signature: signature.subarray(0, 63), message: m, key: key.publicKey };
      if (i === 1234) return { signature, message: m, key: smallOrder };
      return { signature, message: m, key: key.publicKey };
    });
    const batch = pool.batch(n);
    const results: Promise<boolean>[] = [];
    for (const [i, c] of checks.entries()) {
      results.push(batch.verify(c.signature, c.message, c.key));
      if (i % 128 === 127) await batch.breathe();
    }
    await batch.drain();
    const got = await Promise.all(results);
    const expected = checks.map((c) => verifyBytes(c.signature, c.message, c.key));
    expect(got).toEqual(expected);
    expect(expected.filter((ok) => !ok).length).toBeGreaterThan(60);
  });

  it('a small batch is verified on the loop alone, with the same verdicts', async () => {
    const batch = pool.batch(3);
    const good = batch.verify(signBytes(message(1), key.privateKey), message(1), key.publicKey);
    const bad = batch.verify(signBytes(message(1), other.privateKey), message(1), key.publicKey);
    const notAKey = batch.verify(signBytes(message(1), key.privateKey), message(1), key.privateKey);
    await batch.drain();
    expect(await Promise.all([good, bad, notAKey])).toEqual([true, false, false]);
  });

  it('stops a worker that has been idle, and starts one again for the next large batch', async () => {
    const local = new VerifyPool(1, 50);
    const run = async () => {
      const batch = local.batch(2048);
      const results = Array.from({ length: 2048 }, (_, i) =>
        batch.verify(signBytes(message(i), key.privateKey), message(i), key.publicKey),
      );
      await batch.drain();
      expect((await Promise.all(results)).every(Boolean)).toBe(true);
    };
    await run();
    expect(local.running).toBe(1);
    await new Promise((r) => setTimeout(r, 400));
    expect(local.running).toBe(0);
    await run();
    expect(local.running).toBe(1);
    await local.close();
  });

  it('redoes on the loop what a dead worker held, never taking it as passed', async () => {
    const local = new VerifyPool(1);
    const n = 2048;
    const batch = local.batch(n);
    const results = Array.from({ length: n }, (_, i) => {
      const m = message(i);
      return batch.verify(signBytes(m, i % 2 === 0 ? key.privateKey : other.privateKey), m, key.publicKey);
    });
    // The worker has chunks by now (the batch sends them as they fill); stop it mid-way.
    await local.close();
    await batch.drain();
    const got = await Promise.all(results);
    expect(got).toEqual(Array.from({ length: n }, (_, i) => i % 2 === 0));
  });
});

describe('async verification gives the sync verdicts', () => {
  const ring = keyRingOf({ 'a.example': { [key.keyId]: key.publicKey }, 'h.example': { [other.keyId]: other.publicKey } });
  const draft: UnsignedEvent = {
    room_id: '!room:h.example',
    type: 'room.message',
    sender: '@alice:a.example',
    origin: 'a.example',
    origin_ts: 1_700_000_000_000,
    lamport: 3,
    content: { body: 'hello' },
  };

  it('verifyBytesAsync', async () => {
    const m = message(0);
    const signature = signBytes(m, key.privateKey);
    expect(await verifyBytesAsync(signature, m, key.publicKey)).toBe(true);
    expect(await verifyBytesAsync(signature, message(1), key.publicKey)).toBe(false);
    expect(await verifyBytesAsync(signature, m, other.publicKey)).toBe(false);
    expect(await verifyBytesAsync(signature, m, smallOrder)).toBe(false);
    expect(await verifyBytesAsync(signature.subarray(1), m, key.publicKey)).toBe(false);
  });

  it('verifyEventAsync and verifyRecordAsync, for good, forged and altered events and records', async () => {
    const { event } = signEvent(draft, 'a.example', key);
    const record = signRecord(
      { room_id: draft.room_id, seq: 2, event_id: eventId(event), prev: 'p'.repeat(43), host_ts: 5 },
      'h.example',
      other,
    );
    const events = [
      event,
      { ...event, content: { body: 'changed' } },
      { ...event, sender: '@mallory:c.example' },
      { ...event, signatures: { 'a.example': { [`ed25519:${key.keyId}`]: 'A'.repeat(86) } } },
      { ...event, lamport: -1 },
    ];
    for (const e of events) {
      expect(await verifyEventAsync(e, ring, { allowRedacted: true })).toEqual(verifyEvent(e, ring, { allowRedacted: true }));
    }
    // The rest of prepareEvent's checks, without the shape's: a bad sender or size still fails.
    expect(prepareCheckedEvent(event)).toEqual(prepareEvent(event));
    expect(prepareCheckedEvent({ ...event, sender: 'nobody' }).ok).toBe(false);
    expect(prepareCheckedEvent({ ...event, content: { body: 'x'.repeat(70_000) } })).toMatchObject({ ok: false, kind: 'size' });
    const records = [record, { ...record, seq: 3 }, { ...record, signatures: {} }];
    for (const r of records) {
      expect(await verifyRecordAsync(r, 'h.example', ring)).toEqual(verifyRecord(r, 'h.example', ring));
      expect(await verifyRecordAsync(r, 'a.example', ring)).toEqual(verifyRecord(r, 'a.example', ring));
      expect(await verifyRecordAsync(r, 'h.example', ring, { shapeChecked: true })).toEqual(verifyRecord(r, 'h.example', ring));
    }
  });
});
