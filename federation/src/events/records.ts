import { check, SeqRecord } from '@parley/schemas';
import { canonicalJson, sha256B64u } from '../canonical/index.js';
import type { KeyRing, SigningKey } from '../keys/signing-key.js';
import type { BytesVerifier } from '../keys/verify-pool.js';
import { roomHost } from './ids.js';
import { assertSigningKey, checkServerSignature, checkServerSignatureAsync, signatureEntry } from './signatures.js';
import type { RecordFields, SeqRecord as SeqRecordType } from './types.js';

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
    const signed = signedRecord(record, hostName, keyRing);
    if (!signed.ok) return signed;
    const signature = checkServerSignature(signed.signatures, signed.host, signed.payload, keyRing);
    if (!signature.ok) return { ok: false, kind: 'signature', reason: signature.reason };
    return { ok: true, hash: sha256B64u(signed.payload) };
  } catch (err) {
    return { ok: false, kind: 'malformed', reason: (err as Error).message };
  }
}

/**
 * verifyRecord with the Ed25519 check done by `options.verifier` (checkServerSignatureAsync).
 * `options.shapeChecked`: the record passed check(SeqRecord) and has not changed since, so its
 * shape is not validated a second time. Never rejects.
 */
export async function verifyRecordAsync(
  record: unknown,
  hostName: string,
  keyRing: KeyRing,
  options: { verifier?: BytesVerifier; shapeChecked?: boolean } = {},
): Promise<VerifyRecordResult> {
  const verifier = options?.verifier;
  try {
    const signed = signedRecord(record, hostName, keyRing, options?.shapeChecked === true);
    if (!signed.ok) return signed;
    const signature = await checkServerSignatureAsync(signed.signatures, signed.host, signed.payload, keyRing, verifier);
    if (!signature.ok) return { ok: false, kind: 'signature', reason: signature.reason };
    return { ok: true, hash: sha256B64u(signed.payload) };
  } catch (err) {
    return { ok: false, kind: 'malformed', reason: (err as Error).message };
  }
}

/** Shape and host checks of a record, and the bytes its host signed. May throw (callers catch). */
function signedRecord(
  record: unknown,
  hostName: string,
  keyRing: KeyRing,
  shapeChecked = false,
): { ok: true; host: string; payload: Buffer; signatures: SeqRecordType['signatures'] } | Extract<VerifyRecordResult, { ok: false }> {
  const shape = shapeChecked ? { ok: true as const, value: record as SeqRecordType } : check(SeqRecord, record);
  if (!shape.ok) return { ok: false, kind: 'malformed', reason: `record: ${shape.message}` };
  const host = roomHost(shape.value.room_id);
  if (host === null) return { ok: false, kind: 'malformed', reason: 'record: room_id has no valid host' };
  if (hostName !== host) return { ok: false, kind: 'signature', reason: `${String(hostName)} is not the host of ${shape.value.room_id}` };
  if (typeof keyRing !== 'function') return { ok: false, kind: 'signature', reason: 'keyRing: expected a function' };
  return { ok: true, host, payload: Buffer.from(recordPayload(shape.value)), signatures: shape.value.signatures };
}
