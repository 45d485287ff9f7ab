import { type Static, Type } from '@sinclair/typebox';

/** PUT /federation/v1/send/:txnId — a batch from one origin (docs/protocol.md). */
export const MAX_TXN_EVENTS = 100;
export const MAX_TXN_EDUS = 100;

export const FederationTransaction = Type.Object(
  {
    events: Type.Array(Type.Record(Type.String(), Type.Unknown()), { maxItems: MAX_TXN_EVENTS }),
    edus: Type.Array(Type.Record(Type.String(), Type.Unknown()), { maxItems: MAX_TXN_EDUS }),
  },
  { additionalProperties: false },
);
export type FederationTransaction = Static<typeof FederationTransaction>;

export const TransactionResult = Type.Object({
  /** Per event: accepted (`{}`) or why not. */
  events: Type.Record(Type.String(), Type.Object({ error: Type.Optional(Type.String()) })),
  duplicate: Type.Boolean(),
});
export type TransactionResult = Static<typeof TransactionResult>;
