import type { RoomEvent, SeqRecord, Signatures } from '@parley/schemas';

/** An event before its origin fills `hashes` and signs it (docs/protocol.md). */
export type UnsignedEvent = Omit<RoomEvent, 'hashes' | 'signatures'> & {
  hashes?: RoomEvent['hashes'];
  signatures?: Signatures;
};

/** An event whose content hash is filled; signatures may still be missing. */
export type HashedEvent = Omit<RoomEvent, 'signatures'> & { signatures?: Signatures };

/** The fields a host signs into a sequencing record (docs/protocol.md). */
export type RecordFields = Omit<SeqRecord, 'signatures'>;

export type { RoomEvent, SeqRecord, Signatures };
