import { type Static, Type } from '@sinclair/typebox';
import { Password } from './auth.js';
import { Localpart, UserId } from './ids.js';

// Admin API (`/api/v1/admin/…`, admin/README.md) request bodies and the shapes the console reads.

const Reason = Type.String({ minLength: 1, maxLength: 1000 });
/** A DNS name (or IP literal) without port: domain policies match a name and its subdomains. */
export const DOMAIN_PATTERN =
  '^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$|^\\d{1,3}(?:\\.\\d{1,3}){3}$';
export const Domain = Type.String({ pattern: DOMAIN_PATTERN, minLength: 1, maxLength: 253 });

// POST /api/v1/rooms/:roomId/report/:eventId — POST /api/v1/users/:userId/report
export const ReportRequest = Type.Object({ reason: Reason }, { additionalProperties: false });
export type ReportRequest = Static<typeof ReportRequest>;

// POST /api/v1/admin/users
export const AdminCreateUserRequest = Type.Object(
  {
    username: Localpart,
    // Generated (and answered once) when absent.
    password: Type.Optional(Password),
    admin: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);
export type AdminCreateUserRequest = Static<typeof AdminCreateUserRequest>;

// POST /api/v1/admin/users/:userId/password
export const AdminResetPasswordRequest = Type.Object(
  {
    password: Type.Optional(Password),
    // Default true: a reset after a compromise must end the attacker's sessions.
    logout_devices: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);
export type AdminResetPasswordRequest = Static<typeof AdminResetPasswordRequest>;

// PUT /api/v1/admin/users/:userId/admin
export const AdminSetAdminRequest = Type.Object({ admin: Type.Boolean() }, { additionalProperties: false });
export type AdminSetAdminRequest = Static<typeof AdminSetAdminRequest>;

// POST /api/v1/admin/users/:userId/deactivate
export const AdminDeactivateRequest = Type.Object(
  {
    reason: Type.Optional(Reason),
    // Default true: the account leaves every room it is in (a job with progress).
    leave_rooms: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);
export type AdminDeactivateRequest = Static<typeof AdminDeactivateRequest>;

// POST /api/v1/admin/registration-tokens
export const AdminCreateRegistrationTokenRequest = Type.Object(
  {
    uses_allowed: Type.Optional(Type.Union([Type.Integer({ minimum: 1, maximum: 1_000_000 }), Type.Null()])),
    expires_in_ms: Type.Optional(Type.Union([Type.Integer({ minimum: 60_000, maximum: 366 * 86_400_000 }), Type.Null()])),
  },
  { additionalProperties: false },
);
export type AdminCreateRegistrationTokenRequest = Static<typeof AdminCreateRegistrationTokenRequest>;

// POST /api/v1/admin/rooms/:roomId/shutdown
export const AdminShutdownRoomRequest = Type.Object(
  {
    // Also purge the room's log, state and media references from this server.
    delete: Type.Optional(Type.Boolean()),
    // Default true: nobody here may join it again.
    block: Type.Optional(Type.Boolean()),
    reason: Type.Optional(Reason),
  },
  { additionalProperties: false },
);
export type AdminShutdownRoomRequest = Static<typeof AdminShutdownRoomRequest>;

// PUT /api/v1/admin/rooms/:roomId/block
export const AdminBlockRoomRequest = Type.Object(
  { blocked: Type.Boolean(), reason: Type.Optional(Reason) },
  { additionalProperties: false },
);
export type AdminBlockRoomRequest = Static<typeof AdminBlockRoomRequest>;

// PUT /api/v1/admin/reports/:id/assign
export const AdminAssignReportRequest = Type.Object({ assignee: Type.Union([UserId, Type.Null()]) }, { additionalProperties: false });
export type AdminAssignReportRequest = Static<typeof AdminAssignReportRequest>;

// POST /api/v1/admin/reports/:id/resolve
export const AdminResolveReportRequest = Type.Object(
  { resolution: Type.String({ minLength: 1, maxLength: 2000 }) },
  { additionalProperties: false },
);
export type AdminResolveReportRequest = Static<typeof AdminResolveReportRequest>;

// PUT /api/v1/admin/media/:mediaId/quarantine
export const AdminQuarantineRequest = Type.Object({ quarantined: Type.Boolean() }, { additionalProperties: false });
export type AdminQuarantineRequest = Static<typeof AdminQuarantineRequest>;

export const DomainPolicyKind = Type.Union([Type.Literal('block'), Type.Literal('allow')]);
export type DomainPolicyKind = Static<typeof DomainPolicyKind>;

// POST /api/v1/admin/federation/policies
export const AdminDomainPolicyRequest = Type.Object(
  { domain: Domain, kind: DomainPolicyKind, reason: Type.Optional(Reason) },
  { additionalProperties: false },
);
export type AdminDomainPolicyRequest = Static<typeof AdminDomainPolicyRequest>;

// POST /api/v1/admin/federation/policies/import — `data` is CSV (domain,kind,reason) or a JSON array.
export const AdminDomainImportRequest = Type.Object(
  {
    format: Type.Union([Type.Literal('csv'), Type.Literal('json')]),
    data: Type.String({ minLength: 1, maxLength: 2 * 1024 * 1024 }),
  },
  { additionalProperties: false },
);
export type AdminDomainImportRequest = Static<typeof AdminDomainImportRequest>;

// One entry of an import or a blocklist document.
export const DomainPolicyEntry = Type.Object(
  { domain: Domain, kind: Type.Optional(DomainPolicyKind), reason: Type.Optional(Type.Union([Reason, Type.Null()])) },
  { additionalProperties: false },
);
export type DomainPolicyEntry = Static<typeof DomainPolicyEntry>;

// POST /api/v1/admin/federation/subscriptions
export const AdminBlocklistSubscribeRequest = Type.Object(
  {
    url: Type.String({ minLength: 8, maxLength: 2048, pattern: '^https?://[^\\s]+$' }),
    // Ed25519 public key that signs the list, unpadded base64url (32 bytes).
    public_key: Type.String({ pattern: '^[A-Za-z0-9_-]{43}$' }),
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
  },
  { additionalProperties: false },
);
export type AdminBlocklistSubscribeRequest = Static<typeof AdminBlocklistSubscribeRequest>;

/**
 * A subscribable blocklist: served as JSON at its URL, `signature` an Ed25519 signature
 * (unpadded base64url) over the RFC 8785 canonical JSON of the document without `signature`.
 */
export const SignedBlocklist = Type.Object(
  {
    name: Type.String({ maxLength: 200 }),
    issued_ts: Type.Integer({ minimum: 0 }),
    entries: Type.Array(
      Type.Object({ domain: Domain, reason: Type.Optional(Type.Union([Reason, Type.Null()])) }, { additionalProperties: false }),
      { maxItems: 100_000 },
    ),
    signature: Type.String({ pattern: '^[A-Za-z0-9_-]{86}$' }),
  },
  { additionalProperties: false },
);
export type SignedBlocklist = Static<typeof SignedBlocklist>;

// --- what the console reads (documented shapes; the server builds them) ---

export interface AdminUser {
  user_id: string;
  displayname: string | null;
  is_admin: boolean;
  deactivated: boolean;
  created_ts: number;
  last_seen_ts: number | null;
  devices: number;
  media_bytes: number;
}

export interface AdminRoom {
  room_id: string;
  name: string | null;
  host: string;
  kind: string;
  creator: string;
  published: boolean;
  joined_members: number;
  local_members: number;
  events: number;
  blocked: boolean;
}

export interface AdminReport {
  id: number;
  kind: 'event' | 'user';
  reporter: string;
  target_user_id: string;
  room_id: string | null;
  event_id: string | null;
  reason: string;
  event_snapshot: unknown;
  created_ts: number;
  state: 'open' | 'resolved';
  assignee: string | null;
  resolved_by: string | null;
  resolved_ts: number | null;
  resolution: string | null;
}

export interface AdminJob {
  id: string;
  kind: string;
  target: string | null;
  state: 'running' | 'done' | 'failed' | 'interrupted';
  done: number;
  total: number;
  error: string | null;
  result: unknown;
  created_ts: number;
  finished_ts: number | null;
}

export interface AuditEntry {
  id: number;
  ts: number;
  actor: string;
  action: string;
  target: string | null;
  details: Record<string, unknown>;
  ip: string | null;
}

export interface DomainPolicy {
  id: number;
  domain: string;
  kind: DomainPolicyKind;
  reason: string | null;
  batch: string;
  subscription_id: number | null;
  created_ts: number;
  created_by: string;
}

export interface SettingEntry {
  key: string;
  value: unknown;
  source: 'file' | 'environment' | 'default' | 'override';
  secret: boolean;
}
