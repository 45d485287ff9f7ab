import type { DeviceMailbox, SignedDevice, SignedDeviceList } from '@parley/schemas';
import canonicalize from 'canonicalize';
import type { AuthenticationService, Credential } from 'ts-mls';
import { fromB64u, fromUtf8, toB64u, utf8 } from './encoding.js';
import type { Primitives } from './primitives.js';

/**
 * Identities (docs/protocol.md). A user holds one Ed25519 user signing key; it signs each device's
 * credential `{user_id, device_id, signature_key}` and the user's device list, so a
 * homeserver cannot slip a device into anyone's groups: clients accept a device only when
 * the key they pinned for its user signed it.
 */

export interface UserSigningKey {
  readonly userId: string;
  /** 32-byte Ed25519 seed. Never leaves the device except inside an encrypted key backup. */
  readonly seed: Uint8Array;
  readonly publicKey: Uint8Array;
}

/** What a leaf's MLS basic credential carries (UTF-8 canonical JSON in `identity`). */
export interface DeviceIdentity {
  user_id: string;
  device_id: string;
  user_signing_key: string;
  credential_signature: string;
}

export function canonicalBytes(value: unknown): Uint8Array {
  const text = canonicalize(value);
  if (text === undefined) throw new TypeError('value: not serializable as canonical JSON');
  return utf8(text);
}

export function newUserSigningKey(p: Primitives, userId: string): UserSigningKey {
  const seed = p.randomBytes(32);
  return { userId, seed, publicKey: p.ed25519PublicKey(seed) };
}

export function userSigningKeyFromSeed(p: Primitives, userId: string, seed: Uint8Array): UserSigningKey {
  if (!(seed instanceof Uint8Array) || seed.length !== 32) throw new TypeError('seed: expected 32 bytes');
  return { userId, seed, publicKey: p.ed25519PublicKey(seed) };
}

/** The bytes the user key signs for one device (RFC 8785 canonical JSON). */
export function credentialBytes(userId: string, deviceId: string, signatureKey: Uint8Array): Uint8Array {
  return canonicalBytes({ user_id: userId, device_id: deviceId, signature_key: toB64u(signatureKey) });
}

export async function signDevice(
  p: Primitives,
  userKey: UserSigningKey,
  deviceId: string,
  signatureKey: Uint8Array,
): Promise<SignedDevice> {
  const sig = await p.ed25519Sign(userKey.seed, credentialBytes(userKey.userId, deviceId, signatureKey));
  return { device_id: deviceId, signature_key: toB64u(signatureKey), credential_signature: toB64u(sig) };
}

/** A new device list; `version` must exceed the one the server holds. */
export async function buildDeviceList(
  p: Primitives,
  userKey: UserSigningKey,
  devices: readonly SignedDevice[],
  version: number,
): Promise<SignedDeviceList> {
  if (!Number.isSafeInteger(version) || version < 1) throw new TypeError('version: expected a positive integer');
  const unsigned = { user_id: userKey.userId, user_signing_key: toB64u(userKey.publicKey), devices: [...devices], version };
  const signature = await p.ed25519Sign(userKey.seed, canonicalBytes(unsigned));
  return { ...unsigned, signature: toB64u(signature) };
}

export interface VerifiedDeviceList {
  userId: string;
  userSigningKey: Uint8Array;
  version: number;
  /**
   * Devices whose credential the user key signed; the only ones to add to groups. `mailbox`
   * is the device's mailbox queue when its entry names a well-formed one (the list signature
   * covers it: a homeserver that alters it breaks the signature and the whole list is refused).
   */
  devices: { deviceId: string; signatureKey: Uint8Array; mailbox?: DeviceMailbox }[];
  /** Entries refused, each with why. */
  refused: { deviceId: string; reason: string }[];
}

export type DeviceListCheck = { ok: true; list: VerifiedDeviceList } | { ok: false; reason: string };

/**
 * Verifies a device list for `userId`: its own signature, that the signing key is the one
 * pinned for the user (when one is), and each device's credential signature. A device the
 * user key did not sign is refused, and so is a whole list signed by another key.
 */
export async function verifyDeviceList(
  p: Primitives,
  list: SignedDeviceList,
  userId: string,
  pinnedKey?: Uint8Array,
): Promise<DeviceListCheck> {
  if (typeof list !== 'object' || list === null) return { ok: false, reason: 'device list: not an object' };
  if (list.user_id !== userId) return { ok: false, reason: `device list: for ${String(list.user_id)}, not ${userId}` };
  let userKey: Uint8Array;
  let signature: Uint8Array;
  try {
    userKey = fromB64u(list.user_signing_key, 'user_signing_key');
    signature = fromB64u(list.signature, 'signature');
  } catch (err) {
    return { ok: false, reason: `device list: ${(err as Error).message}` };
  }
  if (pinnedKey !== undefined && !equal(pinnedKey, userKey)) {
    return { ok: false, reason: 'device list: signed by a user signing key other than the one pinned for this user (key changed)' };
  }
  const { signature: _omit, ...unsigned } = list;
  let signed: Uint8Array;
  try {
    signed = canonicalBytes(unsigned);
  } catch {
    return { ok: false, reason: 'device list: not canonical JSON' };
  }
  if (!(await p.ed25519Verify(userKey, signed, signature))) return { ok: false, reason: 'device list: bad signature' };
  const devices: VerifiedDeviceList['devices'] = [];
  const refused: VerifiedDeviceList['refused'] = [];
  for (const device of Array.isArray(list.devices) ? list.devices : []) {
    const why = await checkDevice(p, userId, userKey, device);
    if (why === null) {
      const mailbox = checkMailbox(device.mailbox);
      devices.push({ deviceId: device.device_id, signatureKey: fromB64u(device.signature_key), ...(mailbox ? { mailbox } : {}) });
    } else refused.push({ deviceId: String(device?.device_id), reason: why });
  }
  return { ok: true, list: { userId, userSigningKey: userKey, version: list.version, devices, refused } };
}

async function checkDevice(p: Primitives, userId: string, userKey: Uint8Array, device: SignedDevice): Promise<string | null> {
  try {
    const key = fromB64u(device.signature_key, 'signature_key');
    const sig = fromB64u(device.credential_signature, 'credential_signature');
    if (key.length !== 32) return 'signature_key: expected 32 bytes';
    const ok = await p.ed25519Verify(userKey, credentialBytes(userId, device.device_id, key), sig);
    return ok ? null : 'credential not signed by the user signing key';
  } catch (err) {
    return (err as Error).message;
  }
}

const MAILBOX_URL_RE = /^https?:\/\/[^\s/?#]+(\/[^\s?#]*)?$/;
const QUEUE_ID_RE = /^[A-Za-z0-9_-]{32}$/;
const KEY_RE = /^[A-Za-z0-9_-]{43}$/;

/** A device entry's `mailbox` when well-formed (same rules as the schema); anything else is ignored. */
export function checkMailbox(m: unknown): DeviceMailbox | undefined {
  if (typeof m !== 'object' || m === null) return undefined;
  const { url, send_id, seal_key, ...rest } = m as Record<string, unknown>;
  if (Object.keys(rest).length > 0) return undefined;
  if (typeof url !== 'string' || url.length > 256 || !MAILBOX_URL_RE.test(url)) return undefined;
  if (typeof send_id !== 'string' || !QUEUE_ID_RE.test(send_id)) return undefined;
  if (typeof seal_key !== 'string' || !KEY_RE.test(seal_key)) return undefined;
  return { url, send_id, seal_key };
}

/** The MLS basic credential of a device: its identity, with the user key's signature. */
export function deviceCredential(identity: DeviceIdentity): Credential {
  return { credentialType: 'basic', identity: canonicalBytes(identity) };
}

/** Reads a leaf's credential; null when it is not a well-formed Parley device credential. */
export function parseCredential(credential: Credential): DeviceIdentity | null {
  if (credential.credentialType !== 'basic') return null;
  try {
    const v = JSON.parse(fromUtf8(credential.identity)) as Partial<DeviceIdentity>;
    if (
      typeof v.user_id !== 'string' ||
      typeof v.device_id !== 'string' ||
      typeof v.user_signing_key !== 'string' ||
      typeof v.credential_signature !== 'string'
    ) {
      return null;
    }
    return {
      user_id: v.user_id,
      device_id: v.device_id,
      user_signing_key: v.user_signing_key,
      credential_signature: v.credential_signature,
    };
  } catch {
    return null;
  }
}

/**
 * Which user signing key a client trusts for a user: the key of the last device list it
 * verified (trust on first use), a verified key, or none known yet.
 */
export interface KeyDirectory {
  userKey(userId: string): Uint8Array | undefined;
}

/**
 * The MLS Authentication Service (RFC 9420 §5.3.1) of a Parley client: a leaf is accepted
 * only when its credential names a user whose key the directory knows, that key signed
 * `{user_id, device_id, signature_key}`, and `signature_key` is the leaf's own key.
 */
export function parleyAuthService(p: Primitives, directory: KeyDirectory, onUnknownUser?: (userId: string) => void): AuthenticationService {
  const verified = new Set<string>();
  return {
    async validateCredential(credential, signaturePublicKey) {
      const id = parseCredential(credential);
      if (id === null) return false;
      const known = directory.userKey(id.user_id);
      if (known === undefined) onUnknownUser?.(id.user_id);
      if (known === undefined || toB64u(known) !== id.user_signing_key) return false;
      const memo = `${id.user_signing_key}|${id.credential_signature}|${toB64u(signaturePublicKey)}|${id.device_id}|${id.user_id}`;
      if (verified.has(memo)) return true;
      let sig: Uint8Array;
      try {
        sig = fromB64u(id.credential_signature);
      } catch {
        return false;
      }
      const ok = await p.ed25519Verify(known, credentialBytes(id.user_id, id.device_id, signaturePublicKey), sig);
      if (ok) {
        if (verified.size > 10_000) verified.clear();
        verified.add(memo);
      }
      return ok;
    },
  };
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
