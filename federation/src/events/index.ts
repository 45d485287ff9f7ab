export { contentHash, eventId, referenceHash, signingPayload } from './hashes.js';
export { roomHost, userServer } from './ids.js';
export { recordHash, signRecord, type VerifyRecordResult, verifyRecord, verifyRecordAsync } from './records.js';
export { isRedacted, redact } from './redact.js';
export { signEvent } from './sign-event.js';
export { checkEventSize, type SizeCheck } from './size.js';
export type { HashedEvent, RecordFields, RoomEvent, SeqRecord, Signatures, UnsignedEvent } from './types.js';
export {
  type EventFailureKind,
  type PreparedEvent,
  prepareCheckedEvent,
  prepareEvent,
  type VerifyEventOptions,
  type VerifyEventResult,
  verifyEvent,
  verifyEventAsync,
  verifyPreparedEventAsync,
} from './verify-event.js';
