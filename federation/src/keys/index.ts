export { isEd25519Key, SIGNATURE_BYTES, signBytes, verifyBytes } from './ed25519.js';
export { loadNewestKey, loadOrCreateSigningKey } from './key-file.js';
export {
  generateSigningKey,
  KEY_ID_PATTERN,
  type KeyRing,
  keyRingOf,
  newKeyId,
  publicKeyB64u,
  publicKeyFromB64u,
  type SigningKey,
  signingKeyFromSeed,
} from './signing-key.js';
export { isWeakPublicKey, isWeakPublicKeyBytes } from './weak-keys.js';
