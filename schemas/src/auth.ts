import { type Static, Type } from '@sinclair/typebox';
import { DeviceId, Localpart, UserId } from './ids.js';

// Passwords: any Unicode text; the length cap keeps Argon2 input bounded.
export const Password = Type.String({ minLength: 8, maxLength: 1024 });
const DeviceName = Type.String({ minLength: 1, maxLength: 128 });

export const RegistrationMode = Type.Union([Type.Literal('open'), Type.Literal('closed'), Type.Literal('token')]);
export type RegistrationMode = Static<typeof RegistrationMode>;

// GET /api/v1/auth/flows
export const AuthFlows = Type.Object({
  server_name: Type.String(),
  registration: RegistrationMode,
});
export type AuthFlows = Static<typeof AuthFlows>;

// POST /api/v1/auth/register
export const RegisterRequest = Type.Object(
  {
    username: Localpart,
    password: Password,
    device_name: Type.Optional(DeviceName),
    registration_token: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
  },
  { additionalProperties: false },
);
export type RegisterRequest = Static<typeof RegisterRequest>;

// POST /api/v1/auth/login — `username` is a localpart or a full user ID on this server.
export const LoginRequest = Type.Object(
  {
    username: Type.String({ minLength: 1, maxLength: 255 }),
    password: Type.String({ minLength: 1, maxLength: 1024 }),
    device_name: Type.Optional(DeviceName),
    device_id: Type.Optional(DeviceId),
  },
  { additionalProperties: false },
);
export type LoginRequest = Static<typeof LoginRequest>;

export const TokenPair = Type.Object({
  access_token: Type.String(),
  refresh_token: Type.String(),
  expires_in_ms: Type.Integer({ minimum: 0 }),
});
export type TokenPair = Static<typeof TokenPair>;

// Answer of register and login.
export const Session = Type.Composite([Type.Object({ user_id: UserId, device_id: DeviceId }), TokenPair]);
export type Session = Static<typeof Session>;

// POST /api/v1/auth/refresh
export const RefreshRequest = Type.Object(
  { refresh_token: Type.String({ minLength: 1, maxLength: 512 }) },
  { additionalProperties: false },
);
export type RefreshRequest = Static<typeof RefreshRequest>;

// POST /api/v1/auth/logout and /auth/logout/all take an empty object (or no body).
export const EmptyRequest = Type.Object({}, { additionalProperties: false });
export type EmptyRequest = Static<typeof EmptyRequest>;
