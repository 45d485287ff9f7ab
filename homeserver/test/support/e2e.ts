import { generateKeyPairSync, type KeyObject, randomBytes, sign } from 'node:crypto';
import { canonicalJson } from '@parley/federation/canonical';
import type { SignedDeviceList } from '@parley/schemas';

/** A user signing key as a client holds it (tests stand in for the sdk's crypto). */
export interface UserKey {
  publicKey: string;
  privateKey: KeyObject;
}

export function newUserKey(): UserKey {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  return { publicKey: publicKey.export({ format: 'jwk' }).x as string, privateKey };
}

/** Random bytes standing in for an MLS structure (the server never parses them). */
export const opaque = (bytes = 300) => randomBytes(bytes).toString('base64url');

/** A device list signed by `key` over its canonical form without `signature`. */
export function signedList(userId: string, key: UserKey, deviceIds: string[], version: number): SignedDeviceList {
  const unsigned = {
    user_id: userId,
    user_signing_key: key.publicKey,
    devices: deviceIds.map((device_id) => ({
      device_id,
      signature_key: generateKeyPairSync('ed25519').publicKey.export({ format: 'jwk' }).x as string,
      credential_signature: randomBytes(64).toString('base64url'),
    })),
    version,
  };
  const signature = sign(null, Buffer.from(canonicalJson(unsigned)), key.privateKey).toString('base64url');
  return { ...unsigned, signature };
}
