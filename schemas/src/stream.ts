import { type Static, Type } from '@sinclair/typebox';
import { ClientEvent, EventId, EventType, RoomId } from './events.js';
import { DeviceId, UserId } from './ids.js';

/**
 * The live stream (docs/protocol.md): `GET /api/v1/stream` upgrades to a WebSocket carrying JSON
 * text messages. The client identifies with its token and the last position it saw; the
 * server replays what it missed, then pushes live frames. Positions are integers that only
 * grow; a client resumes from the last `position` it processed. `GET /api/v1/sync` answers
 * the same frames by long-poll.
 */

export const MAX_CLIENT_MESSAGE_BYTES = 16 * 1024;

/** Close codes (4000–4999 are application codes in RFC 6455 §7.4.2). */
export const StreamCloseCode = {
  /** Server going away (shutdown): reconnect and resume, preferably elsewhere. */
  GOING_AWAY: 1001,
  /** Message larger than MAX_CLIENT_MESSAGE_BYTES. */
  TOO_LARGE: 1009,
  UNKNOWN_OP: 4000,
  NOT_IDENTIFIED: 4001,
  AUTH_FAILED: 4002,
  /** The token was revoked (logout, device deleted, password changed): do not reconnect with it. */
  REVOKED: 4003,
  INVALID_JSON: 4004,
  INVALID_MESSAGE: 4005,
  ALREADY_IDENTIFIED: 4006,
  /** The client read too slowly; reconnect and resume from the last position it processed. */
  RESUME: 4008,
  IDENTIFY_TIMEOUT: 4009,
  /** `since` is ahead of the server: the client's position came from elsewhere. */
  INVALID_POSITION: 4010,
} as const;

// ---- client → server ----------------------------------------------------------------------

export const IdentifyMessage = Type.Object(
  {
    op: Type.Literal('identify'),
    token: Type.String({ minLength: 1, maxLength: 512 }),
    // Last position the client processed; omitted on a first connection (no replay).
    since: Type.Optional(Type.Integer({ minimum: 0 })),
  },
  { additionalProperties: false },
);
export type IdentifyMessage = Static<typeof IdentifyMessage>;

export const HeartbeatMessage = Type.Object({ op: Type.Literal('heartbeat') }, { additionalProperties: false });

/** A transaction ID: the same (device, txn_id) always answers the same event (HTTP send's `:txnId`). */
export const TXN_ID_PATTERN = '^[A-Za-z0-9._~-]{1,64}$';
export const TxnId = Type.String({ pattern: TXN_ID_PATTERN, maxLength: 64 });

/**
 * `PUT /api/v1/rooms/:roomId/send/:type/:txnId` over the stream socket (identified sockets only):
 * answered by `sent` or `send_error` carrying the same `id`. Same semantics as the HTTP send.
 */
export const SendMessage = Type.Object(
  {
    op: Type.Literal('send'),
    /** The client's correlation string, echoed in the answer. */
    id: Type.String({ minLength: 1, maxLength: 64 }),
    room_id: RoomId,
    type: EventType,
    txn_id: TxnId,
    content: Type.Record(Type.String(), Type.Unknown()),
  },
  { additionalProperties: false },
);
export type SendMessage = Static<typeof SendMessage>;

export const ClientMessage = Type.Union([IdentifyMessage, HeartbeatMessage, SendMessage]);
export type ClientMessage = Static<typeof ClientMessage>;

/**
 * Bytes a `send` message may take beyond its content, written as compact UTF-8 JSON: keys and
 * punctuation (67), the longest `id` (64 characters of up to 3 bytes), `room_id` (255 of up to
 * 3), `type` (128 ASCII) and `txn_id` (64 ASCII). A server admits `send` messages up to its JSON
 * body cap (the HTTP send's) plus this, and holds the content itself to the body cap.
 */
export const SEND_ENVELOPE_MAX_BYTES = 67 + 64 * 3 + 255 * 3 + 128 + 64;

// ---- frame payloads ---------------------------------------------------------------------------

export const EventFrameData = Type.Object({
  event: ClientEvent,
  /** The receiver's unread count in that room after this event. */
  unread_count: Type.Optional(Type.Integer({ minimum: 0 })),
});
export const TypingFrameData = Type.Object({ room_id: RoomId, user_ids: Type.Array(UserId) });
export const ReceiptFrameData = Type.Object({
  room_id: RoomId,
  user_id: UserId,
  event_id: EventId,
  private: Type.Boolean(),
  ts: Type.Integer(),
});
export const PresenceState = Type.Union([Type.Literal('online'), Type.Literal('idle'), Type.Literal('offline')]);
export type PresenceState = Static<typeof PresenceState>;
export const PresenceFrameData = Type.Object({
  user_id: UserId,
  presence: PresenceState,
  last_active_ts: Type.Union([Type.Integer(), Type.Null()]),
});
export const ProfileFrameData = Type.Object({
  user_id: UserId,
  displayname: Type.Union([Type.String(), Type.Null()]),
  avatar_url: Type.Union([Type.String(), Type.Null()]),
});
export const DeviceListFrameData = Type.Object({ user_id: UserId });
export const ToDeviceFrameData = Type.Object({
  sender: UserId,
  sender_device: DeviceId,
  type: Type.String(),
  content: Type.Record(Type.String(), Type.Unknown()),
});

export type FrameKind = 'event' | 'typing' | 'receipt' | 'presence' | 'profile' | 'device_list' | 'to_device';

export const Frame = Type.Union([
  Type.Object({ position: Type.Integer(), kind: Type.Literal('event'), data: EventFrameData }),
  Type.Object({ position: Type.Integer(), kind: Type.Literal('typing'), data: TypingFrameData }),
  Type.Object({ position: Type.Integer(), kind: Type.Literal('receipt'), data: ReceiptFrameData }),
  Type.Object({ position: Type.Integer(), kind: Type.Literal('presence'), data: PresenceFrameData }),
  Type.Object({ position: Type.Integer(), kind: Type.Literal('profile'), data: ProfileFrameData }),
  Type.Object({ position: Type.Integer(), kind: Type.Literal('device_list'), data: DeviceListFrameData }),
  Type.Object({ position: Type.Integer(), kind: Type.Literal('to_device'), data: ToDeviceFrameData }),
]);
export type Frame = Static<typeof Frame>;

// ---- server → client --------------------------------------------------------------------------

/** Sent on connect: identify within `identify_timeout_ms`, send `heartbeat` every `heartbeat_ms`. */
export const HelloMessage = Type.Object({ op: Type.Literal('hello'), heartbeat_ms: Type.Integer(), identify_timeout_ms: Type.Integer() });
/** After identify: replay follows as `frame` messages, then `ready` marks the live edge. */
export const ReadyMessage = Type.Object({
  op: Type.Literal('ready'),
  user_id: UserId,
  device_id: DeviceId,
  /** Position of the live edge; equals the last replayed frame's or the client's `since`. */
  position: Type.Integer(),
  /** True when `since` was omitted or too old to replay exactly: fetch room state afresh. */
  reset: Type.Boolean(),
});
export const FrameMessage = Type.Object({ op: Type.Literal('frame'), frame: Frame });
export const HeartbeatAck = Type.Object({ op: Type.Literal('heartbeat_ack') });
/** A `send` succeeded: what the HTTP send answers (`queued` when the room's host is unreachable: HTTP's 202). */
export const SentMessage = Type.Object({
  op: Type.Literal('sent'),
  id: Type.String(),
  event_id: EventId,
  seq: Type.Optional(Type.Integer({ minimum: 1 })),
  queued: Type.Optional(Type.Boolean()),
});
export type SentMessage = Static<typeof SentMessage>;
/** A `send` failed: the status and error body the same HTTP send would have got. */
export const SendErrorMessage = Type.Object({
  op: Type.Literal('send_error'),
  /** The `id` of the `send` (as the client wrote it, even when it was refused for its length). */
  id: Type.String(),
  status: Type.Integer({ minimum: 400, maximum: 599 }),
  error: Type.Object({
    code: Type.String({ pattern: '^PARLEY_[A-Z_]+$' }),
    message: Type.String(),
    field: Type.Optional(Type.String()),
    retry_after_ms: Type.Optional(Type.Integer({ minimum: 0 })),
  }),
});
export type SendErrorMessage = Static<typeof SendErrorMessage>;
export type ServerMessage =
  | Static<typeof HelloMessage>
  | Static<typeof ReadyMessage>
  | Static<typeof FrameMessage>
  | Static<typeof HeartbeatAck>
  | SentMessage
  | SendErrorMessage;

// ---- REST around the stream -------------------------------------------------------------------

// GET /api/v1/sync?since=&timeout=
export const SyncResponse = Type.Object({
  frames: Type.Array(Frame),
  /** Pass as `since` next time. */
  next: Type.Integer(),
  reset: Type.Boolean(),
});
export type SyncResponse = Static<typeof SyncResponse>;

// PUT /api/v1/rooms/:roomId/typing
export const TypingRequest = Type.Object(
  { typing: Type.Boolean(), timeout_ms: Type.Optional(Type.Integer({ minimum: 1000, maximum: 120_000 })) },
  { additionalProperties: false },
);
export type TypingRequest = Static<typeof TypingRequest>;

// PUT /api/v1/presence
export const PresenceRequest = Type.Object({ presence: PresenceState }, { additionalProperties: false });
export type PresenceRequest = Static<typeof PresenceRequest>;

// PUT /api/v1/send_to_device/:type/:txnId — `messages[user][device or "*"] = content`.
export const ToDeviceRequest = Type.Object(
  {
    messages: Type.Record(
      Type.String({ maxLength: 255 }),
      Type.Record(Type.String({ maxLength: 64 }), Type.Record(Type.String(), Type.Unknown()), { maxProperties: 100 }),
      { maxProperties: 100 },
    ),
  },
  { additionalProperties: false },
);
export type ToDeviceRequest = Static<typeof ToDeviceRequest>;
