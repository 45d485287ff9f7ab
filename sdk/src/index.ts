export {
  type FetchLike,
  type HttpMethod,
  ParleyClient,
  type ParleyClientOptions,
  type RequestOptions,
} from './client.js';
export { getPublicKey, signEd25519, verifyEd25519 } from './crypto/ed25519.js';
export {
  errorFromResponse,
  isParleyApiError,
  ParleyApiError,
  type ParleyApiErrorInit,
  type ParleyErrorCode,
} from './errors.js';
export {
  type DownloadedMedia,
  downloadMedia,
  filenameFromDisposition,
  getMediaInfo,
  type UploadMediaOptions,
  uploadMedia,
} from './media.js';
export { newTxnId, RoomsApi } from './rooms.js';
export type { StoredSession } from './session.js';
