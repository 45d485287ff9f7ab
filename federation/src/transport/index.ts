export {
  DEFAULT_LIMITS,
  FederationClient,
  type FederationClientOptions,
  type FederationRequest,
  type FederationResponse,
  type FetchJsonOptions,
  type PinsFor,
  type TransportLimits,
} from './client.js';
export { type DialTarget, guardedConnector, type HostLookup, type LookupAddress, systemLookup, type TlsTrust } from './connector.js';
export {
  type DiscoveryOptions,
  parseWellKnown,
  type ResolvedServer,
  ServerDiscovery,
  WELL_KNOWN_PATH,
  type WellKnownFetcher,
} from './discovery.js';
export { FederationError, type FederationErrorKind, isFederationError } from './errors.js';
export { SILENT_LOG, type TransportLog } from './log.js';
export {
  AUTH_SCHEME,
  type AuthFailure,
  type AuthFailureCode,
  authenticateRequest,
  checkAddressAndTime,
  type KeyLookup,
  MAX_AUTHORIZATION_LENGTH,
  type ParseAuthorizationResult,
  type ParsedAuthorization,
  parseAuthorization,
  REQUEST_TIME_WINDOW_MS,
  type ReceivedRequest,
  type RequestToSign,
  requestSigningInput,
  signRequest,
  type VerifyRequestOptions,
  type VerifyRequestResult,
  verifyRequest,
} from './request-auth.js';
export { DEFAULT_FEDERATION_PORT, formatHostPort, parseServerName, type ServerAddress } from './server-name.js';
export { AddressPolicy, type AddressPolicyOptions, addressBucket, isPublicAddress } from './ssrf.js';
