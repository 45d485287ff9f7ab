export {
  type FetchLike,
  type HttpMethod,
  ParleyClient,
  type ParleyClientOptions,
  type RequestOptions,
} from './client.js';
export {
  errorFromResponse,
  isParleyApiError,
  ParleyApiError,
  type ParleyApiErrorInit,
  type ParleyErrorCode,
} from './errors.js';
export type { StoredSession } from './session.js';
