/**
 * End-to-end encryption for Parley clients (docs/protocol.md): the only module that touches ts-mls.
 * Browser-safe; Node-only pieces (the file store) are in `@parley/sdk/crypto/node`.
 */
export { ATTACHMENT_ALGORITHM, AttachmentError, type AttachmentKey, decryptAttachment, encryptAttachment } from './attachments.js';
export {
  BACKUP_ALGORITHM,
  BackupError,
  type BackupErrorCode,
  formatRecoveryKey,
  newRecoveryKey,
  openBackup,
  parseRecoveryKey,
  sealBackup,
} from './backup.js';
export {
  type CommitResult,
  CryptoDevice,
  type CryptoDeviceOptions,
  type DecryptResult,
  type JoinResult,
  MAX_PLAINTEXT_BYTES,
  type PreparedCommit,
} from './device.js';
export { fromB64u, toB64u } from './encoding.js';
export {
  type CommitFailureReason,
  CryptoFailureError,
  DECRYPT_FAILURE_REASONS,
  type DecryptFailureReason,
  type Failure,
} from './failures.js';
export { DEFAULT_KEY_RETENTION, type Member } from './group-state.js';
export {
  buildDeviceList,
  credentialBytes,
  type DeviceIdentity,
  type DeviceListCheck,
  type KeyDirectory,
  parseCredential,
  type UserSigningKey,
  type VerifiedDeviceList,
  verifyDeviceList,
} from './identity.js';
export { decodeKeyPackage, KEY_PACKAGE_LOW_WATER, KEY_PACKAGE_TARGET, KeyPackagePool, type KeyUpload } from './key-packages.js';
export { type MembershipInputs, type MembershipPlan, membershipPlan } from './membership.js';
export type { Primitives, SignerKind } from './primitives.js';
export { SAS_EMOJI, type SafetyParty, safetyEmoji, safetyNumber } from './safety.js';
export {
  type DecryptedEvent,
  E2eSession,
  type E2eSessionEvents,
  type E2eSessionOptions,
  type RoomEvent,
  type UserTrust,
} from './session.js';
export { type EnvelopeOutcome, MAX_PARTS, type MailboxEnvelope, SessionMailbox } from './session-mailbox.js';
export type { TrustedDevices } from './session-trust.js';
export { type CryptoStore, MemoryCryptoStore } from './store.js';
export { IndexedDbCryptoStore } from './store-indexeddb.js';
export { CIPHERSUITE, loadSuite, type Suite, type SuiteOptions } from './suite.js';
export {
  CryptoWorkerClient,
  CryptoWorkerError,
  serveCryptoDevice,
  WORKER_METHODS,
  type WorkerDeviceOptions,
  type WorkerMethod,
} from './worker.js';
