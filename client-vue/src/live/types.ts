import type { ClientEvent, Frame, PresenceState } from '@parley/schemas';
import type { Ref } from 'vue';

/**
 * `live`: updates arrive. `connecting`: first contact. `reconnecting`: the connection
 * dropped and we retry (the banner shows). `stopped`: signed out or the session ended.
 */
export type ConnectionState = 'connecting' | 'live' | 'reconnecting' | 'stopped';

/** Where live updates go: the stores. Stream frames and poll results both end here. */
export interface LiveSink {
  /** The room on screen (polled often; the stream needs no hint). */
  openRoom(): string | null;
  /** Re-read the room list (new rooms, invites, names, unread counts). */
  refreshRooms(): Promise<void>;
  /** Fetch what is new in one room's timeline. */
  catchUp(roomId: string): Promise<void>;
  /** Events pushed by the stream, in order, with the server's unread count after them. */
  events(roomId: string, events: ClientEvent[], unread?: number): void;
  typing(roomId: string, userIds: string[]): void;
  receipt(roomId: string, userId: string, eventId: string): void;
  /** Someone's presence changed (stream only). */
  presence?(userId: string, state: PresenceState): void;
  /** Someone's display name or avatar changed (stream only). */
  profile?(userId: string, displayname: string | null, avatarUrl: string | null): void;
  /** Every stream frame as it arrives, all kinds (end-to-end encryption needs to-device and device-list ones too). */
  frame?(frame: Frame): void;
  /** The session is gone (revoked): stop and send the person to sign in. */
  sessionEnded(): void;
}

export interface LiveSource {
  readonly state: Ref<ConnectionState>;
  /** Which mechanism is in use, for the settings page and bug reports. */
  readonly kind: 'stream' | 'poll';
  /** Ask for an immediate update (room opened, browser back online). */
  poke(): void;
  stop(): void;
}
