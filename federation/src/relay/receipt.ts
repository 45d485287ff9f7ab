import type { KeyObject } from 'node:crypto';
import type { Signatures } from '@parley/schemas';
import { canonicalJson } from '../canonical/canonical-json.js';
import { checkServerSignature, signatureEntry } from '../events/signatures.js';
import type { SigningKey } from '../keys/signing-key.js';

/**
 * A delivery receipt (docs/protocol.md, "Store-and-forward"): the destination's signed statement
 * that it has the transaction `txn_id` from `origin`. A destination answers a transaction that a
 * relay brings with one; the relay hands it back to the origin, which only then counts the
 * transaction as delivered. A relay cannot forge one (it does not hold the destination's key), so
 * a relay that takes a transaction and withholds it leaves the origin's copy pending.
 */
export interface RelayReceipt {
  type: 'parley.relay_receipt';
  origin: string;
  destination: string;
  txn_id: string;
  ts: number;
  signatures: Signatures;
}

/** The header a relay sets when it brings a transaction to its destination: its own server name. */
export const RELAYED_BY_HEADER = 'parley-relayed-by';

const MAX_FIELD = 255;

function signingInput(r: Omit<RelayReceipt, 'signatures'>): Uint8Array {
  return new TextEncoder().encode(
    canonicalJson({ type: r.type, origin: r.origin, destination: r.destination, txn_id: r.txn_id, ts: r.ts }, 'receipt'),
  );
}

/** The destination signs a receipt for a transaction it has (applied now or before). */
export function signReceipt(p: { origin: string; destination: string; txnId: string; ts: number }, key: SigningKey): RelayReceipt {
  const unsigned = { type: 'parley.relay_receipt' as const, origin: p.origin, destination: p.destination, txn_id: p.txnId, ts: p.ts };
  return { ...unsigned, signatures: { [p.destination]: signatureEntry(signingInput(unsigned), key) } };
}

export type ReceiptCheck = { ok: true } | { ok: false; reason: string };

/**
 * Checks that `raw` is a receipt by `expected.destination` for exactly this origin and txn ID.
 * `lookup` finds the destination's public key by key ID (from the key store). Never throws.
 */
export async function verifyReceipt(
  raw: unknown,
  expected: { origin: string; destination: string; txnId: string },
  lookup: (server: string, keyId: string) => Promise<KeyObject | undefined>,
): Promise<ReceiptCheck> {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return { ok: false, reason: 'receipt: expected an object' };
  const r = raw as Partial<RelayReceipt>;
  if (r.type !== 'parley.relay_receipt') return { ok: false, reason: 'receipt: wrong type' };
  for (const f of ['origin', 'destination', 'txn_id'] as const)
    if (typeof r[f] !== 'string' || (r[f] as string).length > MAX_FIELD) return { ok: false, reason: `receipt.${f}: expected a string` };
  if (!Number.isSafeInteger(r.ts) || (r.ts as number) < 0) return { ok: false, reason: 'receipt.ts: expected a timestamp' };
  if (r.origin !== expected.origin || r.destination !== expected.destination || r.txn_id !== expected.txnId)
    return { ok: false, reason: 'receipt names another transaction' };
  const mine = r.signatures && typeof r.signatures === 'object' ? (r.signatures as Signatures)[expected.destination] : undefined;
  if (!mine || typeof mine !== 'object') return { ok: false, reason: `receipt: no signature by ${expected.destination}` };
  const keys = new Map<string, KeyObject>();
  for (const name of Object.keys(mine).slice(0, 4)) {
    if (!name.startsWith('ed25519:')) continue;
    try {
      const key = await lookup(expected.destination, name.slice('ed25519:'.length));
      if (key) keys.set(name.slice('ed25519:'.length), key);
    } catch {
      // unknown key: the check below says so
    }
  }
  const check = checkServerSignature(r.signatures as Signatures, expected.destination, signingInput(r as RelayReceipt), (server, keyId) =>
    server === expected.destination ? keys.get(keyId) : undefined,
  );
  return check.ok ? { ok: true } : { ok: false, reason: check.reason };
}
