import { type Static, Type } from '@sinclair/typebox';

/**
 * Room events and sequencing records (docs/protocol.md). These are the signed objects that the
 * room log stores and federation carries; every part of Parley agrees on them through here.
 *
 * Hashes and signatures are unpadded base64url. Integers only, within ±2^53 (RFC 8785 form).
 */

// Size caps (docs/protocol.md): canonical event ≤ 64 KiB, its content ≤ 48 KiB.
export const MAX_EVENT_BYTES = 64 * 1024;
export const MAX_CONTENT_BYTES = 48 * 1024;

const B64U = '^[A-Za-z0-9_-]+$';
export const EVENT_ID_PATTERN = '^\\$[A-Za-z0-9_-]{43}$';
export const ROOM_ID_PATTERN = '^![A-Za-z0-9_-]{1,64}:[^\\s/]+$';
export const ROOM_ALIAS_PATTERN = '^#[a-z0-9._=-]{1,64}:[^\\s/]+$';

export const EventId = Type.String({ pattern: EVENT_ID_PATTERN });
export const RoomId = Type.String({ pattern: ROOM_ID_PATTERN, maxLength: 255 });
export const RoomAlias = Type.String({ pattern: ROOM_ALIAS_PATTERN, maxLength: 255 });
// Reverse-DNS or `room.*` / `space.*` names.
export const EventType = Type.String({ pattern: '^[a-z][a-z0-9_.-]{0,127}$' });

/** `{ <server>: { "ed25519:<keyId>": <sig> } }` */
export const Signatures = Type.Record(
  Type.String(),
  Type.Record(Type.String({ pattern: '^ed25519:[A-Za-z0-9_]+$' }), Type.String({ pattern: B64U })),
);
export type Signatures = Static<typeof Signatures>;

/**
 * The event as its origin signs it (authorship layer). `event_id` is not a member: it is
 * `$` + the reference hash (SHA-256 of the canonical redacted form without `signatures`
 * and `unsigned`), so anyone recomputes it.
 */
export const RoomEvent = Type.Object(
  {
    room_id: RoomId,
    type: EventType,
    state_key: Type.Optional(Type.String({ maxLength: 255 })),
    sender: Type.String({ maxLength: 255 }),
    origin: Type.String({ maxLength: 255 }),
    origin_ts: Type.Integer({ minimum: 0 }),
    lamport: Type.Integer({ minimum: 0 }),
    content: Type.Record(Type.String(), Type.Unknown()),
    // Content hash: SHA-256 over the canonical event without signatures, unsigned and hashes.
    hashes: Type.Object({ sha256: Type.String({ pattern: B64U }) }),
    signatures: Signatures,
    unsigned: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
  },
  { additionalProperties: false },
);
export type RoomEvent = Static<typeof RoomEvent>;

/**
 * The host's sequencing record (order layer): `prev` is the record hash of seq − 1 (null
 * for seq 1), so one valid host signature on the latest record commits to all history.
 * Record hash: SHA-256 over the canonical record without `signatures`.
 */
export const SeqRecord = Type.Object(
  {
    room_id: RoomId,
    seq: Type.Integer({ minimum: 1 }),
    event_id: EventId,
    prev: Type.Union([Type.String({ pattern: B64U }), Type.Null()]),
    host_ts: Type.Integer({ minimum: 0 }),
    signatures: Signatures,
  },
  { additionalProperties: false },
);
export type SeqRecord = Static<typeof SeqRecord>;

/** What clients see: the two layers merged. */
export const ClientEvent = Type.Object({
  event_id: EventId,
  room_id: RoomId,
  seq: Type.Optional(Type.Integer({ minimum: 1 })),
  type: EventType,
  state_key: Type.Optional(Type.String()),
  sender: Type.String(),
  origin_ts: Type.Integer(),
  content: Type.Record(Type.String(), Type.Unknown()),
  unsigned: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
});
export type ClientEvent = Static<typeof ClientEvent>;

// ---- Well-known event types and their content -------------------------------------------

export const Membership = Type.Union(['join', 'invite', 'leave', 'ban', 'knock'].map((m) => Type.Literal(m)));
export type Membership = 'join' | 'invite' | 'leave' | 'ban' | 'knock';
export const JoinRule = Type.Union(['public', 'invite', 'knock'].map((m) => Type.Literal(m)));
export type JoinRule = 'public' | 'invite' | 'knock';
export const HistoryVisibility = Type.Union(['world_readable', 'shared', 'invited', 'joined'].map((m) => Type.Literal(m)));
export type HistoryVisibility = 'world_readable' | 'shared' | 'invited' | 'joined';

/** Permission bits (docs/protocol.md). ADMIN implies every other bit. */
export const Permission = {
  VIEW: 1 << 0,
  SEND: 1 << 1,
  REACT: 1 << 2,
  ATTACH: 1 << 3,
  MANAGE_MESSAGES: 1 << 4,
  INVITE: 1 << 5,
  KICK: 1 << 6,
  BAN: 1 << 7,
  MANAGE_ROLES: 1 << 8,
  MANAGE_ROOM: 1 << 9,
  ADMIN: 1 << 10,
} as const;
export type PermissionName = keyof typeof Permission;
export const ALL_PERMISSIONS = Object.values(Permission).reduce((a, b) => a | b, 0);

/**
 * `room.roles` content. Every member implicitly holds the role `everyone` (its position is
 * always 0). A member's permissions are the union of their roles'; their position is the
 * highest position among them. The room creator always holds ADMIN.
 */
export const Role = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 64 }),
    position: Type.Integer({ minimum: 0, maximum: 1000 }),
    permissions: Type.Integer({ minimum: 0, maximum: ALL_PERMISSIONS }),
    color: Type.Optional(Type.String({ pattern: '^#[0-9a-fA-F]{6}$' })),
  },
  { additionalProperties: false },
);
export type Role = Static<typeof Role>;
export const RolesContent = Type.Object(
  {
    roles: Type.Record(Type.String({ pattern: '^[a-z0-9_-]{1,32}$' }), Role),
    users: Type.Record(Type.String(), Type.Array(Type.String({ maxLength: 32 }), { maxItems: 32 })),
  },
  { additionalProperties: false },
);
export type RolesContent = Static<typeof RolesContent>;

export const CreateContent = Type.Object({
  creator: Type.String(),
  kind: Type.Union([Type.Literal('room'), Type.Literal('space')]),
  version: Type.Literal(1),
});
export type CreateContent = Static<typeof CreateContent>;

export const MemberContent = Type.Object({
  membership: Membership,
  reason: Type.Optional(Type.String({ maxLength: 1024 })),
  displayname: Type.Optional(Type.Union([Type.String({ maxLength: 256 }), Type.Null()])),
  avatar_url: Type.Optional(Type.Union([Type.String({ maxLength: 2048 }), Type.Null()])),
});
export type MemberContent = Static<typeof MemberContent>;

export const RelatesTo = Type.Object({
  type: Type.Union(['replace', 'reply', 'thread', 'annotation'].map((m) => Type.Literal(m))),
  event_id: EventId,
  key: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
});
export type RelatesTo = Static<typeof RelatesTo>;

export const MessageContent = Type.Object({
  body: Type.String({ maxLength: 40_000 }),
  msgtype: Type.Optional(Type.String({ maxLength: 64 })),
  format: Type.Optional(Type.String({ maxLength: 64 })),
  formatted_body: Type.Optional(Type.String({ maxLength: 40_000 })),
  url: Type.Optional(Type.String({ maxLength: 2048 })),
  info: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
  relates_to: Type.Optional(RelatesTo),
  new_content: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
});
export type MessageContent = Static<typeof MessageContent>;

/**
 * Keys of `content` that survive redaction, per event type; all other content is removed.
 * Top-level keys that survive: room_id, type, state_key, sender, origin, origin_ts, lamport,
 * hashes, signatures.
 */
export const REDACTION_KEEPS: Readonly<Record<string, readonly string[] | 'all'>> = {
  'room.create': 'all',
  'room.member': ['membership'],
  'room.roles': 'all',
  'room.join_rules': ['join_rule'],
  'room.history_visibility': ['history_visibility'],
  // Encryption is one-way (auth rules); a redaction that emptied it would undo it (issue 10, L9).
  'room.encryption': 'all',
  // MLS handshake messages: every device must process every sequenced commit, in order, or it
  // forks from the group; a redaction must not take one away (docs/protocol.md).
  'room.mls.commit': 'all',
  'room.mls.proposal': 'all',
  'room.redaction': ['redacts'],
};

// Content of the simple state events, checked by the homeserver before the auth rules.
export const NameContent = Type.Object({ name: Type.String({ maxLength: 255 }) }, { additionalProperties: false });
export const TopicContent = Type.Object({ topic: Type.String({ maxLength: 4096 }) }, { additionalProperties: false });
export const AvatarContent = Type.Object({ url: Type.String({ maxLength: 2048 }) }, { additionalProperties: false });
export const PinnedContent = Type.Object(
  { pinned: Type.Array(EventId, { maxItems: 100, uniqueItems: true }) },
  { additionalProperties: false },
);
export const CanonicalAliasContent = Type.Object({ alias: Type.Union([RoomAlias, Type.Null()]) }, { additionalProperties: false });
export const EncryptionContent = Type.Object(
  { algorithm: Type.String({ maxLength: 128 }), rotation_period_ms: Type.Optional(Type.Integer({ minimum: 0 })) },
  { additionalProperties: false },
);
export const SpaceChildContent = Type.Object(
  {
    via: Type.Optional(Type.Array(Type.String({ maxLength: 255 }), { maxItems: 20 })),
    order: Type.Optional(Type.String({ maxLength: 64 })),
  },
  { additionalProperties: false },
);
export const ReactionContent = Type.Object(
  { relates_to: Type.Object({ type: Type.Literal('annotation'), event_id: EventId, key: Type.String({ minLength: 1, maxLength: 64 }) }) },
  { additionalProperties: false },
);
export const JoinRulesContent = Type.Object({ join_rule: JoinRule }, { additionalProperties: false });
export const HistoryVisibilityContent = Type.Object({ history_visibility: HistoryVisibility }, { additionalProperties: false });
