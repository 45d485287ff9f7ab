import { type Static, Type } from '@sinclair/typebox';

/** Every error code the client API can answer with, and what it means. */
export const ErrorCodes = {
  PARLEY_BAD_JSON: 'The body is not valid JSON',
  PARLEY_INVALID_PARAM: 'A field or parameter has the wrong type or value',
  PARLEY_MISSING_PARAM: 'A required field or parameter is missing',
  PARLEY_UNSUPPORTED_MEDIA_TYPE: 'The Content-Type is not accepted here',
  PARLEY_TOO_LARGE: 'The body exceeds the size cap',
  PARLEY_QUOTA_EXCEEDED: 'The upload would take the account over its media storage quota',
  PARLEY_MISSING_TOKEN: 'No access token was given',
  PARLEY_UNKNOWN_TOKEN: 'The access or refresh token is not recognised (or was revoked)',
  PARLEY_TOKEN_EXPIRED: 'The access token has expired; refresh it',
  PARLEY_FORBIDDEN: 'The caller may not do this',
  PARLEY_NOT_FOUND: 'No such resource',
  PARLEY_METHOD_NOT_ALLOWED: 'The path exists but not with this method',
  PARLEY_USER_IN_USE: 'The username is taken',
  PARLEY_ALIAS_IN_USE: 'The room alias is taken',
  PARLEY_DUPLICATE_ANNOTATION: 'You already reacted to this event with this key',
  PARLEY_REGISTRATION_CLOSED: 'This server does not accept new registrations',
  PARLEY_REGISTRATION_TOKEN_INVALID: 'The registration token is missing, unknown, used up or expired',
  PARLEY_INVALID_CREDENTIALS: 'Wrong username or password',
  PARLEY_WEAK_PASSWORD: 'The password does not meet the policy',
  PARLEY_USER_DEACTIVATED: 'The account is deactivated',
  PARLEY_RATE_LIMITED: 'Too many requests; retry after the given delay',
  PARLEY_RELAY_QUOTA: 'The relay holds as much for this origin (or in all) as it allows; retry later or use another relay',
  PARLEY_RELAY_OFF: 'This server is not an anchor relay',
  PARLEY_RELAY_NOT_CONNECTED: 'The destination holds no live reservation on this relay now; retry later',
  PARLEY_RELAY_BAD_ENVELOPE: 'The relay envelope is malformed',
  PARLEY_RELAY_TOO_LARGE: 'The request or its answer exceeds the relay body cap',
  PARLEY_RELAY_RATE_LIMITED: 'Too many requests per second for this reservation',
  PARLEY_RELAY_BYTE_LIMITED: 'Too many bytes per second for this reservation',
  PARLEY_RELAY_ORIGIN_LIMIT: 'Too many requests per second from this origin through the relay',
  PARLEY_RELAY_BUSY: 'Too many requests to this reservation are waiting for an answer',
  PARLEY_RELAY_TIMEOUT: 'The reserved server did not answer in time',
  PARLEY_RELAY_FULL: 'The relay holds as many reservations as it allows',
  PARLEY_RELAY_IP_LIMIT: 'This IP address holds as many reservations on the relay as it allows',
  PARLEY_RELAY_NETWORK_LIMIT: 'This network (IPv4 /16, IPv6 /32) holds as many reservations on the relay as it allows',
  PARLEY_RELAY_HANDSHAKE_PENDING: 'A connection for this server is still proving its key',
  PARLEY_FED_BAD_AUTH: 'The Authorization header is missing or malformed',
  PARLEY_FED_WRONG_DESTINATION: 'The request was signed for another server',
  PARLEY_FED_STALE_REQUEST: 'The request was signed outside the accepted time window (replayed, or the clocks disagree)',
  PARLEY_FED_UNKNOWN_KEY: 'The signing key of the origin could not be found',
  PARLEY_FED_BAD_SIGNATURE: 'The request signature does not verify',
  PARLEY_ROOM_ENCRYPTED: 'The room is end-to-end encrypted: send room.encrypted, not plaintext',
  PARLEY_MLS_STALE_EPOCH: 'Another MLS commit already advanced this epoch: process it and retry in the current epoch',
  PARLEY_VERSION_ROLLBACK: 'The version is not newer than the stored one',
  PARLEY_BACKUP_CONFLICT: 'The key backup changed since the version given: fetch, merge and retry',
  PARLEY_TOO_MANY_KEY_PACKAGES: 'The device would hold more key packages than allowed',
  PARLEY_UNAVAILABLE: 'A dependency (database, queue) is unavailable',
  PARLEY_INTERNAL: 'Internal error',
} as const;

export type ErrorCode = keyof typeof ErrorCodes;

export const ErrorBody = Type.Object(
  {
    error: Type.Object({
      code: Type.String({ pattern: '^PARLEY_[A-Z_]+$' }),
      message: Type.String(),
      field: Type.Optional(Type.String()),
      retry_after_ms: Type.Optional(Type.Integer({ minimum: 0 })),
    }),
  },
  { $id: 'ErrorBody' },
);
export type ErrorBody = Static<typeof ErrorBody>;
