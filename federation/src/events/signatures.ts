import type { Signatures } from '@parley/schemas';
import { signBytes, verifyBytes } from '../keys/ed25519.js';
import { KEY_ID_PATTERN, type KeyRing, type SigningKey } from '../keys/signing-key.js';

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
  const mine = Object.hasOwn(signatures, server) ? signatures[server] : undefined;
  if (typeof mine !== 'object' || mine === null) return { ok: false, reason: `no signature by ${server}` };
  const tried: string[] = [];
  let failed = false;
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
    if (!key) continue;
    const signature = decodeSignature(value);
    if (signature && verifyBytes(signature, payload, key)) return { ok: true, keyId };
    failed = true;
  }
  if (failed) return { ok: false, reason: `bad signature by ${server}` };
  return { ok: false, reason: `no known key of ${server} among [${tried.join(', ')}]` };
}
