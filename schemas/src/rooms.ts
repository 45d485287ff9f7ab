import { type Static, Type } from '@sinclair/typebox';
import { ClientEvent, EventId, HistoryVisibility, JoinRule, Membership, RoomId } from './events.js';
import { UserId } from './ids.js';

const Reason = Type.Optional(Type.String({ maxLength: 1024 }));
const Name = Type.String({ minLength: 1, maxLength: 255 });
const Topic = Type.String({ maxLength: 4096 });
// The localpart of an alias to create on this server, e.g. "general" for #general:server.
const AliasLocalpart = Type.String({ pattern: '^[a-z0-9._=-]{1,64}$' });

// POST /api/v1/rooms
export const CreateRoomRequest = Type.Object(
  {
    name: Type.Optional(Name),
    topic: Type.Optional(Topic),
    visibility: Type.Union([Type.Literal('public'), Type.Literal('private')]),
    invite: Type.Optional(Type.Array(UserId, { maxItems: 100, uniqueItems: true })),
    alias: Type.Optional(AliasLocalpart),
    kind: Type.Optional(Type.Union([Type.Literal('room'), Type.Literal('space')])),
    // A channel of this space (hosted on the same server); it inherits the space's roles.
    parent: Type.Optional(RoomId),
    history_visibility: Type.Optional(HistoryVisibility),
    join_rule: Type.Optional(JoinRule),
    // A direct message: recorded in room.create (`is_direct`) and shown in room summaries.
    is_direct: Type.Optional(Type.Boolean()),
    // End-to-end encrypted from the start (room.encryption with MLS_ALGORITHM); irreversible.
    // Off unless asked, DMs included: the client decides (it must have crypto to use the room).
    encrypted: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);
export type CreateRoomRequest = Static<typeof CreateRoomRequest>;

export const RoomIdResponse = Type.Object({ room_id: RoomId });
export type RoomIdResponse = Static<typeof RoomIdResponse>;

// POST /api/v1/rooms/:roomId/{invite,kick,ban,unban}
export const MembershipChangeRequest = Type.Object({ user_id: UserId, reason: Reason }, { additionalProperties: false });
export type MembershipChangeRequest = Static<typeof MembershipChangeRequest>;

// POST /api/v1/rooms/:roomId/{join,leave}
export const ReasonRequest = Type.Object({ reason: Reason }, { additionalProperties: false });
export type ReasonRequest = Static<typeof ReasonRequest>;

// PUT …/send/:type/:txnId, PUT …/state/:type/:stateKey, PUT …/redact/:eventId/:txnId
// `queued`: the room's host (another server) was unreachable; the event waits in the outbox
// and is sequenced when the host is back (HTTP 202).
export const SendResponse = Type.Object({
  event_id: EventId,
  seq: Type.Optional(Type.Integer({ minimum: 1 })),
  queued: Type.Optional(Type.Boolean()),
});
export type SendResponse = Static<typeof SendResponse>;

export const RedactRequest = Type.Object({ reason: Reason }, { additionalProperties: false });
export type RedactRequest = Static<typeof RedactRequest>;

// GET /api/v1/rooms/:roomId/messages
export const MessagesResponse = Type.Object({
  chunk: Type.Array(ClientEvent),
  start: Type.String(),
  end: Type.Optional(Type.String()),
});
export type MessagesResponse = Static<typeof MessagesResponse>;

// GET /api/v1/rooms/:roomId/context/:eventId
export const ContextResponse = Type.Object({
  event: ClientEvent,
  before: Type.Array(ClientEvent),
  after: Type.Array(ClientEvent),
  start: Type.String(),
  end: Type.String(),
});
export type ContextResponse = Static<typeof ContextResponse>;

export const RoomSummary = Type.Object({
  room_id: RoomId,
  kind: Type.Union([Type.Literal('room'), Type.Literal('space')]),
  membership: Membership,
  name: Type.Union([Type.String(), Type.Null()]),
  topic: Type.Union([Type.String(), Type.Null()]),
  avatar_url: Type.Union([Type.String(), Type.Null()]),
  canonical_alias: Type.Union([Type.String(), Type.Null()]),
  joined_members: Type.Integer(),
  unread_count: Type.Integer(),
  last_event: Type.Union([ClientEvent, Type.Null()]),
  parent: Type.Union([RoomId, Type.Null()]),
  encrypted: Type.Boolean(),
  // Created as a direct message (room.create `is_direct`); absent when unknown (remote invites).
  is_direct: Type.Optional(Type.Boolean()),
});
export type RoomSummary = Static<typeof RoomSummary>;

// GET /api/v1/rooms
export const RoomList = Type.Object({ rooms: Type.Array(RoomSummary) });
export type RoomList = Static<typeof RoomList>;

export const Member = Type.Object({
  user_id: UserId,
  membership: Membership,
  displayname: Type.Union([Type.String(), Type.Null()]),
  avatar_url: Type.Union([Type.String(), Type.Null()]),
  roles: Type.Array(Type.String()),
});
export type Member = Static<typeof Member>;
export const MemberList = Type.Object({ members: Type.Array(Member) });
export type MemberList = Static<typeof MemberList>;

// POST /api/v1/rooms/:roomId/receipt
export const ReceiptRequest = Type.Object(
  {
    event_id: EventId, // Private receipts move the read marker but are shown to nobody else.
    private: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);
export type ReceiptRequest = Static<typeof ReceiptRequest>;

export const PublicRoom = Type.Object({
  room_id: RoomId,
  name: Type.Union([Type.String(), Type.Null()]),
  topic: Type.Union([Type.String(), Type.Null()]),
  canonical_alias: Type.Union([Type.String(), Type.Null()]),
  joined_members: Type.Integer(),
  kind: Type.Union([Type.Literal('room'), Type.Literal('space')]),
});
export type PublicRoom = Static<typeof PublicRoom>;
// GET /api/v1/directory/rooms
export const PublicRoomList = Type.Object({ chunk: Type.Array(PublicRoom), next: Type.Optional(Type.String()) });
export type PublicRoomList = Static<typeof PublicRoomList>;

// PUT /api/v1/directory/alias/:alias
export const AliasRequest = Type.Object({ room_id: RoomId }, { additionalProperties: false });
export type AliasRequest = Static<typeof AliasRequest>;

// GET /api/v1/rooms/:roomId/hierarchy
export const Hierarchy = Type.Object({ room: PublicRoom, children: Type.Array(PublicRoom) });
export type Hierarchy = Static<typeof Hierarchy>;

// GET /api/v1/search
export const SearchResult = Type.Object({ rank: Type.Number(), event: ClientEvent });
export const SearchResponse = Type.Object({ results: Type.Array(SearchResult), count: Type.Integer(), next: Type.Optional(Type.String()) });
export type SearchResponse = Static<typeof SearchResponse>;
