import type { ClientEvent } from '@parley/schemas';
import type { ComputedRef, InjectionKey } from 'vue';

/** What a room view offers its timeline rows beyond the row itself (pins, threads, panels). */
export interface RoomContext {
  pinned: ComputedRef<ReadonlySet<string>>;
  mayPin: ComputedRef<boolean>;
  /** Replies in thread per root event ID, from the loaded timeline. */
  threadCounts: ComputedRef<ReadonlyMap<string, number>>;
  togglePin(eventId: string): void;
  openThread(root: ClientEvent): void;
  openHistory(ev: ClientEvent): void;
}

export const ROOM_CONTEXT: InjectionKey<RoomContext> = Symbol('room-context');
