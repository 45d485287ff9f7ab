export {
  type BuildKeyDocumentParams,
  buildKeyDocument,
  KEY_DOCUMENT_CLOCK_SKEW_MS,
  type KeyDocumentFailureKind,
  keyUsableAt,
  MAX_KEY_VALIDITY_MS,
  notarize,
  type VerifiedKey,
  type VerifyKeyDocumentOptions,
  type VerifyKeyDocumentResult,
  verifyKeyDocument,
  verifyNotarized,
} from './documents.js';
export { isEd25519Key, SIGNATURE_BYTES, signBytes, verifyBytes, verifyBytesAsync } from './ed25519.js';
export { loadNewestKey, loadOrCreateSigningKey } from './key-file.js';
export { KeyStore } from './key-store.js';
export {
  type DirectKeyFetcher,
  type FetchAdmission,
  KEY_STORE_DEFAULTS,
  type KeyDocumentPersistence,
  type KeyStoreEvent,
  type KeyStoreOptions,
  type LookupOptions,
  type NotaryKeyQuery,
  type StoredKeyDocument,
  type TrustedNotary,
} from './key-store-types.js';
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
export { type BytesVerifier, VerifyBatch, VerifyPool } from './verify-pool.js';
export { isWeakPublicKey, isWeakPublicKeyBytes } from './weak-keys.js';
