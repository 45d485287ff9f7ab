import { check, SeqRecord } from '@parley/schemas';
import { canonicalJson, sha256B64u } from '../canonical/index.js';
import type { KeyRing, SigningKey } from '../keys/signing-key.js';
import { roomHost } from './ids.js';
import { assertSigningKey, checkServerSignature, signatureEntry } from './signatures.js';
import type { RecordFields } from './types.js';

/**
 * Sequencing records, the order layer (docs/protocol.md): the host signs `{ room_id, seq, event_id,
 * prev, host_ts }`, and `prev` is the record hash of seq − 1, so one valid host signature on
 * the newest record commits to the whole history (a hash chain, as in a transparency log).
 */

function recordPayload(record: RecordFields): string {
  // Only the five signed members: a record object carrying more still hashes the same.
  const { room_id, seq, event_id, prev, host_ts } = record;
  return canonicalJson({ room_id, seq, event_id, prev, host_ts }, 'record');
}

/** SHA-256 of the canonical record without `signatures`, unpadded base64url. */
export function recordHash(record: RecordFields): string {
  return sha256B64u(recordPayload(record));
}

/** The host signs a record. Throws a TypeError naming the bad parameter or field. */
export function signRecord(fields: RecordFields, hostName: string, key: SigningKey): SeqRecord {
  if (typeof fields !== 'object' || fields === null) throw new TypeError('fields: expected an object');
  assertSigningKey(key);
  const { room_id, seq, event_id, prev, host_ts } = fields;
  const unsigned = { room_id, seq, event_id, prev, host_ts };
  const shape = check(SeqRecord, { ...unsigned, signatures: {} });
  if (!shape.ok) throw new TypeError(`fields: ${shape.message}`);
  if (hostName !== roomHost(room_id)) throw new TypeError(`hostName: ${String(hostName)} is not the host of ${room_id}`);
  const payload = Buffer.from(recordPayload(unsigned));
  return { ...unsigned, signatures: { [hostName]: signatureEntry(payload, key) } };
}

export type VerifyRecordResult = { ok: true; hash: string } | { ok: false; kind: 'malformed' | 'signature'; reason: string };

/**
 * Checks a record's shape and that `hostName`, which must be the room's host, signed it.
 * Returns the record hash the next record's `prev` must name. Never throws.
 */
export function verifyRecord(record: unknown, hostName: string, keyRing: KeyRing): VerifyRecordResult {
  try {
    const shape = check(SeqRecord, record);
    if (!shape.ok) return { ok: false, kind: 'malformed', reason: `record: ${shape.message}` };
    const host = roomHost(shape.value.room_id);
    if (host === null) return { ok: false, kind: 'malformed', reason: 'record: room_id has no valid host' };
    if (hostName !== host) return { ok: false, kind: 'signature', reason: `${String(hostName)} is not the host of ${shape.value.room_id}` };
    if (typeof keyRing !== 'function') return { ok: false, kind: 'signature', reason: 'keyRing: expected a function' };
    const payload = recordPayload(shape.value);
    const signature = checkServerSignature(shape.value.signatures, host, Buffer.from(payload), keyRing);
    if (!signature.ok) return { ok: false, kind: 'signature', reason: signature.reason };
    return { ok: true, hash: sha256B64u(payload) };
  } catch (err) {
    return { ok: false, kind: 'malformed', reason: (err as Error).message };
  }
}
