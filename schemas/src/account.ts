import { type Static, Type } from '@sinclair/typebox';
import { Password } from './auth.js';
import { DeviceId, UserId } from './ids.js';

// GET /api/v1/account/whoami
export const WhoAmI = Type.Object({
  user_id: UserId,
  device_id: DeviceId,
  is_admin: Type.Boolean(),
});
export type WhoAmI = Static<typeof WhoAmI>;

// POST /api/v1/account/password
export const PasswordChangeRequest = Type.Object(
  {
    old_password: Type.String({ minLength: 1, maxLength: 1024 }),
    new_password: Password,
    // Other devices are signed out unless the caller asks to keep them.
    logout_other_devices: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);
export type PasswordChangeRequest = Static<typeof PasswordChangeRequest>;

export const Device = Type.Object({
  device_id: DeviceId,
  display_name: Type.Union([Type.String(), Type.Null()]),
  created_ts: Type.Integer(),
  last_seen_ts: Type.Union([Type.Integer(), Type.Null()]),
  last_seen_ip: Type.Union([Type.String(), Type.Null()]),
  current: Type.Boolean(),
});
export type Device = Static<typeof Device>;

// GET /api/v1/devices
export const DeviceList = Type.Object({ devices: Type.Array(Device) });
export type DeviceList = Static<typeof DeviceList>;

// PUT /api/v1/devices/:deviceId
export const DeviceUpdateRequest = Type.Object(
  { display_name: Type.String({ minLength: 1, maxLength: 128 }) },
  { additionalProperties: false },
);
export type DeviceUpdateRequest = Static<typeof DeviceUpdateRequest>;

// GET/PUT /api/v1/profile/:userId
export const Profile = Type.Object({
  user_id: UserId,
  displayname: Type.Union([Type.String(), Type.Null()]),
  avatar_url: Type.Union([Type.String(), Type.Null()]),
});
export type Profile = Static<typeof Profile>;

// Media references are `mxc`-like `parley://server/id` URIs or https URLs.
const AvatarUrl = Type.String({ maxLength: 2048, pattern: '^(parley://|https://)[^\\s]+$' });

export const ProfileUpdateRequest = Type.Object(
  {
    displayname: Type.Optional(Type.Union([Type.String({ minLength: 1, maxLength: 256 }), Type.Null()])),
    avatar_url: Type.Optional(Type.Union([AvatarUrl, Type.Null()])),
  },
  { additionalProperties: false, minProperties: 1 },
);
export type ProfileUpdateRequest = Static<typeof ProfileUpdateRequest>;

// GET /health
export const Health = Type.Object({
  status: Type.Union([Type.Literal('ok'), Type.Literal('unavailable')]),
  server_name: Type.String(),
  version: Type.String(),
  checks: Type.Record(Type.String(), Type.Object({ ok: Type.Boolean(), detail: Type.Optional(Type.String()) })),
});
export type Health = Static<typeof Health>;
