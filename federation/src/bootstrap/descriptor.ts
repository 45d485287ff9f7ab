import {
  type BootstrapCapability,
  BootstrapDescriptor,
  type BootstrapEndpoint,
  check,
  isServerName,
  MAX_DESCRIPTOR_VALIDITY_MS,
} from '@parley/schemas';
import { canonicalJson } from '../canonical/index.js';
import { checkServerSignature, signatureEntry } from '../events/signatures.js';
import { type KeyRing, publicKeyB64u, type SigningKey } from '../keys/signing-key.js';

/** How far in the future a descriptor's `issued_ts` may lie (clock skew between servers). */
export const DESCRIPTOR_CLOCK_SKEW_MS = 5 * 60_000;

export interface BuildDescriptorParams {
  serverName: string;
  key: SigningKey;
  endpoints: BootstrapEndpoint[];
  tlsFingerprints: string[];
  capabilities: BootstrapCapability[];
  limits?: Record<string, number>;
  now: number;
  validForMs: number;
}

function payload(doc: object): Buffer {
  const { signatures: _s, ...signed } = doc as Record<string, unknown>;
  return Buffer.from(canonicalJson(signed, 'descriptor'));
}

/** This server's own descriptor, signed with its server key. Throws a TypeError naming a bad parameter. */
export function buildDescriptor(p: BuildDescriptorParams): BootstrapDescriptor {
  if (!isServerName(p.serverName)) throw new TypeError('serverName: expected a server name');
  if (!Number.isSafeInteger(p.now) || p.now < 0) throw new TypeError('now: expected a timestamp (ms)');
  if (!Number.isSafeInteger(p.validForMs) || p.validForMs < 60_000 || p.validForMs > MAX_DESCRIPTOR_VALIDITY_MS) {
    throw new TypeError(`validForMs: expected 1 minute to ${MAX_DESCRIPTOR_VALIDITY_MS} ms`);
  }
  const unsigned = {
    server_name: p.serverName,
    endpoints: p.endpoints,
    verify_keys: { [`ed25519:${p.key.keyId}`]: { key: publicKeyB64u(p.key.publicKey) } },
    tls_fingerprints: p.tlsFingerprints.map((sha256) => ({ sha256 })),
    capabilities: [...new Set(p.capabilities)].sort(),
    limits: p.limits ?? {},
    issued_ts: p.now,
    valid_until_ts: p.now + p.validForMs,
  };
  const doc = { ...unsigned, signatures: { [p.serverName]: signatureEntry(payload(unsigned), p.key) } };
  const shape = check(BootstrapDescriptor, doc);
  if (!shape.ok) throw new TypeError(`descriptor: ${shape.field || 'descriptor'}: ${shape.message}`);
  return shape.value;
}

export type DescriptorCheck =
  | { ok: true; descriptor: BootstrapDescriptor }
  | { ok: false; kind: 'malformed' | 'expired' | 'future' | 'signature'; reason: string };

/**
 * Verifies a descriptor against the key of the server it names, as the caller knows it
 * (`keyRing`: keys fetched from that server and pinned, never the keys the descriptor itself
 * carries — a descriptor re-signed by another key is refused). Checks shape and caps, that it
 * has not expired, that it was not issued in the future, and that it claims at most 7 days.
 * Never throws.
 */
export function verifyDescriptor(raw: unknown, keyRing: KeyRing, now: number): DescriptorCheck {
  try {
    const shape = check(BootstrapDescriptor, raw);
    if (!shape.ok) return { ok: false, kind: 'malformed', reason: `descriptor: ${shape.field || 'descriptor'}: ${shape.message}` };
    const d = shape.value;
    if (d.valid_until_ts <= now)
      return { ok: false, kind: 'expired', reason: `descriptor of ${d.server_name} expired at ${d.valid_until_ts}` };
    if (d.issued_ts > now + DESCRIPTOR_CLOCK_SKEW_MS) {
      return { ok: false, kind: 'future', reason: `descriptor of ${d.server_name} is issued in the future (${d.issued_ts})` };
    }
    if (d.valid_until_ts - d.issued_ts > MAX_DESCRIPTOR_VALIDITY_MS || d.valid_until_ts < d.issued_ts) {
      return { ok: false, kind: 'malformed', reason: `descriptor of ${d.server_name} claims more than 7 days` };
    }
    const signed = checkServerSignature(d.signatures, d.server_name, payload(d), keyRing);
    if (!signed.ok) return { ok: false, kind: 'signature', reason: `descriptor of ${d.server_name}: ${signed.reason}` };
    return { ok: true, descriptor: d };
  } catch (err) {
    return { ok: false, kind: 'malformed', reason: `descriptor: ${(err as Error)?.message ?? String(err)}` };
  }
}

/** The key IDs a descriptor is signed with by its own server (to fetch before verifying). */
export function descriptorKeyIds(raw: unknown): { server: string; keyIds: string[] } | null {
  if (typeof raw !== 'object' || raw === null) return null;
  const { server_name: server, signatures } = raw as { server_name?: unknown; signatures?: unknown };
  if (typeof server !== 'string' || !isServerName(server) || typeof signatures !== 'object' || signatures === null) return null;
  const mine = Object.hasOwn(signatures, server) ? (signatures as Record<string, unknown>)[server] : undefined;
  if (typeof mine !== 'object' || mine === null) return null;
  const keyIds = Object.keys(mine)
    .filter((k) => k.startsWith('ed25519:'))
    .map((k) => k.slice(8))
    .slice(0, 4);
  return keyIds.length > 0 ? { server, keyIds } : null;
}
