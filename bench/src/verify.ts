import { randomBytes, sign, verify } from 'node:crypto';
import { signEvent, signingPayload, signRecord, verifyEvent, verifyRecord } from '@parley/federation/events';
import { generateSigningKey, keyRingOf } from '@parley/federation/keys';

export interface VerifyOptions {
  /** Distinct signed events to cycle through (so nothing is a cache hit). */
  events: number;
  /** Time spent in each measured loop. */
  seconds: number;
}

const ORIGIN = 'a.bench';
const HOST = 'b.bench';
const ROOM = '!bench0verify0room:b.bench';

/**
 * Operations per second of each loop. The loops take turns in short slices, so a load that
 * comes and goes on a shared machine weighs on all of them alike and their ratio holds.
 */
function rates(seconds: number, loops: Array<(i: number) => void>): number[] {
  for (const step of loops) {
    const warm = performance.now() + 100;
    for (let i = 0; performance.now() < warm; i++) step(i);
  }
  const slice = Math.min(250, (seconds * 1000) / 4);
  const counts = loops.map(() => 0);
  const times = loops.map(() => 0);
  for (let round = 0; round < Math.ceil((seconds * 1000) / slice); round++) {
    loops.forEach((step, k) => {
      const t0 = performance.now();
      const end = t0 + slice;
      let n = counts[k]!;
      // Check the clock every 32 operations: reading it costs about as much as a hash.
      while (performance.now() < end) for (let j = 0; j < 32; j++) step(n++);
      counts[k] = n;
      times[k]! += performance.now() - t0;
    });
  }
  return counts.map((n, k) => Math.round(n / (times[k]! / 1000)));
}

/**
 * bench/README.md verify: how many signed room events per second the federation library verifies
 * (schema and size checks, canonical JSON of the redacted form, reference hash for the event
 * ID, Ed25519 signature, content hash) against bare node:crypto Ed25519 verifies of messages of
 * the same size. Also the per-entry work of a participant: event plus its sequencing record.
 */
export function verifyBench(o: VerifyOptions): Record<string, unknown> {
  const originKey = generateSigningKey();
  const hostKey = generateSigningKey();
  const ring = keyRingOf({ [ORIGIN]: { [originKey.keyId]: originKey.publicKey }, [HOST]: { [hostKey.keyId]: hostKey.publicKey } });
  // Realistic messages: a 200-byte body, as in fed-fanout, from one of many senders.
  const entries = Array.from({ length: o.events }, (_, i) => {
    const { event, eventId } = signEvent(
      {
        room_id: ROOM,
        type: 'room.message',
        sender: `@user${i % 997}:${ORIGIN}`,
        origin: ORIGIN,
        origin_ts: 1_700_000_000_000 + i,
        lamport: i,
        content: { msgtype: 'text', body: `v|${i}|`.padEnd(200, '.') },
      },
      ORIGIN,
      originKey,
    );
    const record = signRecord(
      { room_id: ROOM, seq: i + 2, event_id: eventId, prev: randomBytes(32).toString('base64url'), host_ts: 1_700_000_000_000 + i },
      HOST,
      hostKey,
    );
    return { event, record };
  });
  for (const e of entries) {
    if (!verifyEvent(e.event, ring).ok || !verifyRecord(e.record, HOST, ring).ok) throw new Error('verify: a freshly signed entry failed');
  }
  // The same byte count the event signature covers, signed by the same kind of key.
  const payloadBytes = Buffer.byteLength(signingPayload(entries[0]!.event));
  const raw = entries.map(() => {
    const message = randomBytes(payloadBytes);
    return { message, signature: sign(null, message, originKey.privateKey) };
  });

  let failures = 0;
  const [eventsPerS, rawPerS, entriesPerS] = rates(o.seconds, [
    (i) => {
      if (!verifyEvent(entries[i % entries.length]!.event, ring).ok) failures++;
    },
    (i) => {
      const r = raw[i % raw.length]!;
      if (!verify(null, r.message, originKey.publicKey, r.signature)) failures++;
    },
    (i) => {
      const e = entries[i % entries.length]!;
      if (!verifyEvent(e.event, ring).ok || !verifyRecord(e.record, HOST, ring).ok) failures++;
    },
  ]) as [number, number, number];
  if (failures > 0) throw new Error(`verify: ${failures} verifications failed`);
  return {
    scenario: 'verify',
    events_per_s: eventsPerS,
    raw_verifies_per_s: rawPerS,
    events_vs_raw: Math.round((eventsPerS / rawPerS) * 1000) / 1000,
    entries_per_s: entriesPerS,
    signed_payload_bytes: payloadBytes,
    distinct_events: o.events,
    seconds_per_loop: o.seconds,
  };
}
