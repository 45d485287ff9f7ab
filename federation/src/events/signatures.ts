import type { Signatures } from '@parley/schemas';
import { signBytes, verifyBytes, verifyBytesAsync } from '../keys/ed25519.js';
import { KEY_ID_PATTERN, type KeyRing, type SigningKey } from '../keys/signing-key.js';
import type { BytesVerifier } from '../keys/verify-pool.js';

/** Signs canonical bytes and returns `{ "ed25519:<keyId>": <unpadded base64url> }` (docs/protocol.md). */
export function signatureEntry(payload: Uint8Array, key: SigningKey): Record<string, string> {
  return { [`ed25519:${key.keyId}`]: Buffer.from(signBytes(payload, key.privateKey)).toString('base64url') };
}

export function assertSigningKey(key: unknown): asserts key is SigningKey {
  const k = key as SigningKey | null;
  if (typeof k !== 'object' || k === null || typeof k.keyId !== 'string' || !KEY_ID_PATTERN.test(k.keyId)) {
    throw new TypeError('key: expected a SigningKey with a keyId matching [A-Za-z0-9_]+');
  }
}

const SIGNATURE_B64U = /^[A-Za-z0-9_-]{86}$/;

/** Strict unpadded base64url of 64 bytes, or undefined: a second spelling is not a signature. */
function decodeSignature(value: unknown): Uint8Array | undefined {
  if (typeof value !== 'string' || !SIGNATURE_B64U.test(value)) return undefined;
  const raw = Buffer.from(value, 'base64url');
  return raw.length === 64 && raw.toString('base64url') === value ? raw : undefined;
}

export type SignatureCheck = { ok: true; keyId: string } | { ok: false; reason: string };

/**
 * Checks that `server` signed `payload`: at least one of its `ed25519:` signatures verifies
 * under a key the ring knows. Signatures are not covered by signatures, so anyone who relays
 * an object can add entries; one that verifies under the server's key is what counts, as in
 * Matrix. Never throws.
 */
export function checkServerSignature(signatures: Signatures, server: string, payload: Uint8Array, keyRing: KeyRing): SignatureCheck {
  const found = candidatesOf(signatures, server, keyRing);
  if ('reason' in found) return found;
  let failed = false;
  for (const c of found.candidates) {
    if (!c.key) continue;
    if (c.signature && verifyBytes(c.signature, payload, c.key)) return { ok: true, keyId: c.keyId };
    failed = true;
  }
  return verdictOf(server, found.tried, failed);
}

/**
 * checkServerSignature with the Ed25519 checks done by `verifier`: libuv's thread pool
 * (verifyBytesAsync) unless the caller brings one (a VerifyPool batch). Never rejects.
 */
export async function checkServerSignatureAsync(
  signatures: Signatures,
  server: string,
  payload: Uint8Array,
  keyRing: KeyRing,
  verifier: BytesVerifier = verifyBytesAsync,
): Promise<SignatureCheck> {
  const found = candidatesOf(signatures, server, keyRing);
  if ('reason' in found) return found;
  let failed = false;
  for (const c of found.candidates) {
    if (!c.key) continue;
    if (c.signature && (await verifier(c.signature, payload, c.key))) return { ok: true, keyId: c.keyId };
    failed = true;
  }
  return verdictOf(server, found.tried, failed);
}

interface Candidate {
  keyId: string;
  key: ReturnType<KeyRing>;
  signature: Uint8Array | undefined;
}

/** The server's `ed25519:` signatures in order, each with the ring's key (if any) and its decoded bytes. */
function candidatesOf(
  signatures: Signatures,
  server: string,
  keyRing: KeyRing,
): { candidates: Candidate[]; tried: string[] } | { ok: false; reason: string } {
  const mine = Object.hasOwn(signatures, server) ? signatures[server] : undefined;
  if (typeof mine !== 'object' || mine === null) return { ok: false, reason: `no signature by ${server}` };
  const tried: string[] = [];
  const candidates: Candidate[] = [];
  for (const [name, value] of Object.entries(mine)) {
    if (!name.startsWith('ed25519:')) continue;
    const keyId = name.slice('ed25519:'.length);
    tried.push(name);
    let key: ReturnType<KeyRing>;
    try {
      key = keyRing(server, keyId);
    } catch {
      key = undefined;
    }
    candidates.push({ keyId, key, signature: key ? decodeSignature(value) : undefined });
  }
  return { candidates, tried };
}

function verdictOf(server: string, tried: string[], failed: boolean): SignatureCheck {
  if (failed) return { ok: false, reason: `bad signature by ${server}` };
  return { ok: false, reason: `no known key of ${server} among [${tried.join(', ')}]` };
}
