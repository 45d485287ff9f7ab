import { type Static, Type } from '@sinclair/typebox';
import { DeviceListEdu } from './e2e.js';
import { EventId, EventType, RoomId } from './events.js';
import { DeviceId, UserId } from './ids.js';
import { PresenceState } from './stream.js';

/**
 * Ephemeral data units (EDUs): what servers exchange besides room events, in the `edus` of a
 * federation transaction (docs/protocol.md). Each names a user of the sending server; the receiver
 * refuses any that does not. Every EDU is checked on its own, so one bad item never costs
 * the transaction's events.
 */

/** The server-side bound on a typing notice (the client API allows the same). */
export const MAX_TYPING_TIMEOUT_MS = 120_000;

export const TypingEdu = Type.Object(
  {
    type: Type.Literal('typing'),
    room_id: RoomId,
    user_id: UserId,
    typing: Type.Boolean(),
    /** How long the receiver shows the user as typing unless told otherwise. */
    timeout_ms: Type.Integer({ minimum: 1000, maximum: MAX_TYPING_TIMEOUT_MS }),
  },
  { additionalProperties: false },
);
export type TypingEdu = Static<typeof TypingEdu>;

/** A public read receipt (private ones never leave their server). */
export const ReceiptEdu = Type.Object(
  {
    type: Type.Literal('receipt'),
    room_id: RoomId,
    user_id: UserId,
    event_id: EventId,
    ts: Type.Integer({ minimum: 0 }),
  },
  { additionalProperties: false },
);
export type ReceiptEdu = Static<typeof ReceiptEdu>;

export const PresenceEdu = Type.Object(
  {
    type: Type.Literal('presence'),
    user_id: UserId,
    presence: PresenceState,
    /** Milliseconds since the user was last active, as the sender measured it (no shared clock). */
    last_active_ago: Type.Union([Type.Integer({ minimum: 0 }), Type.Null()]),
  },
  { additionalProperties: false },
);
export type PresenceEdu = Static<typeof PresenceEdu>;

/**
 * To-device messages from one sender device to users of the receiving server, grouped per
 * destination like the client request: `messages[user][device or "*"] = content`.
 * Durable (delivered at least once); the receiver deduplicates by (origin, message_id).
 */
export const ToDeviceEdu = Type.Object(
  {
    type: Type.Literal('to_device'),
    sender: UserId,
    sender_device: DeviceId,
    message_type: EventType,
    message_id: Type.String({ pattern: '^[A-Za-z0-9._~-]{1,128}$' }),
    messages: Type.Record(
      UserId,
      Type.Record(Type.String({ pattern: '^(?:\\*|[A-Za-z0-9_-]{1,64})$' }), Type.Record(Type.String(), Type.Unknown()), {
        maxProperties: 100,
        additionalProperties: false,
      }),
      { minProperties: 1, maxProperties: 100, additionalProperties: false },
    ),
  },
  { additionalProperties: false },
);
export type ToDeviceEdu = Static<typeof ToDeviceEdu>;

export const EDU_TYPES = ['typing', 'receipt', 'presence', 'to_device', 'device_list'] as const;
export type EduType = (typeof EDU_TYPES)[number];

/** The schema for each EDU type; receivers pick by `type` so errors name the right field. */
export const EduSchemas = {
  typing: TypingEdu,
  receipt: ReceiptEdu,
  presence: PresenceEdu,
  to_device: ToDeviceEdu,
  device_list: DeviceListEdu,
} as const;

export type Edu = TypingEdu | ReceiptEdu | PresenceEdu | ToDeviceEdu | DeviceListEdu;
