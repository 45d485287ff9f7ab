export {
  AdminApi,
  type AdminMediaItem,
  type AdminSession,
  type BlocklistSubscription,
  type BootstrapEntry,
  type Dashboard,
  type DestinationOverview,
  type MediaUsage,
  type RegistrationToken,
  type ReportFigures,
} from './admin.js';
export { assertBackoffOptions, type BackoffOptions, backoffDelay, DEFAULT_BACKOFF } from './backoff.js';
export {
  type FetchLike,
  type HttpMethod,
  ParleyClient,
  type ParleyClientOptions,
  type RequestOptions,
} from './client.js';
export * from './contact.js';
export { getPublicKey, signEd25519, verifyEd25519 } from './crypto/ed25519.js';
export { type CommitSubmit, E2eApi } from './e2e.js';
export { Emitter, type Listener } from './emitter.js';
export {
  errorFromResponse,
  isParleyApiError,
  ParleyApiError,
  type ParleyApiErrorInit,
  type ParleyErrorCode,
} from './errors.js';
export { FrameFeed, type FrameOf, parseFrame, type StreamEvents, type StreamTransport } from './frames.js';
export { MailboxClient, type MailboxClientOptions, type MailboxLimits, type MailboxQueue, type ReceivedBlob } from './mailbox.js';
export {
  type DownloadedMedia,
  downloadMedia,
  filenameFromDisposition,
  getMediaInfo,
  type UploadMediaOptions,
  uploadMedia,
} from './media.js';
export { framesToEmit, isPosition, positionAfterReady, streamUrl } from './positions.js';
export { newTxnId, RoomsApi } from './rooms.js';
export type { StoredSession } from './session.js';
export { ParleyStream, type ParleyStreamOptions, type WebSocketConstructor, type WebSocketLike } from './stream.js';
export { isDeadSession, SyncPoller, type SyncPollerOptions } from './sync-poller.js';
