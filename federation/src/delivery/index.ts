export {
  type DestinationState,
  DOWN_AFTER,
  FIRST_RETRY_MS,
  MAX_RETRY_MS,
  mayTry,
  onFailure,
  onInbound,
  onSuccess,
  retryDelay,
} from './destination-state.js';
