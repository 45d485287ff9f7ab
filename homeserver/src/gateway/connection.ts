import type { Duplex } from 'node:stream';
import type { SendMessage, ServerMessage } from '@parley/schemas';
import { StreamCloseCode } from '@parley/schemas';
import type { WebSocket } from 'ws';
import type { StreamNote } from '../repositories/stream.js';
import type { AuthContext } from '../services/sessions.js';
import { admits, type StreamViewer, track } from '../services/stream-view.js';
import { countsAsUnread, frameMessageFor } from './frames.js';

export type ConnectionState = 'connected' | 'replaying' | 'live' | 'closed';

/**
 * One identified (or identifying) stream socket. Frames go out strictly in position order:
 * while replaying, live notes wait in `pending`; afterwards anything at or below the last
 * position sent is dropped, so replay and live may overlap without duplicates.
 */
export class StreamConnection {
  state: ConnectionState = 'connected';
  userId = '';
  deviceId = '';
  devicePk = 0;
  tokenId = '';
  /** When the token this stream identified with expires (the stream ends then). */
  tokenExpiresTs = Number.POSITIVE_INFINITY;
  position = 0;
  /** Rooms, membership logs and ephemeral windows: what this device may see (stream-view.ts). */
  viewer: StreamViewer = { userId: '', deviceId: '', rooms: new Set(), logs: new Map(), ephemeralFrom: new Map() };
  readonly unread = new Map<string, number>();
  /** Rooms joined since identify (replay re-queries after each, with the wider room set). */
  joins = 0;
  lastSeen = Date.now();
  /** Who identified (null until the token is authenticated): whom `send`s are written as. */
  auth: AuthContext | null = null;
  /** `send`s read but not yet handed to RoomService, in arrival order (gateway.ts, pumpSends). */
  sendQueue: SendMessage[] = [];
  /** `send`s handed to RoomService and not answered yet. */
  sendsInFlight = 0;
  /** Reading from the socket is paused (too many `send`s in flight). */
  readPaused = false;
  private pending: StreamNote[] = [];

  constructor(
    readonly ws: WebSocket,
    readonly ip: string,
    private readonly maxBufferedBytes: number,
    private readonly onRoomsChanged: (conn: StreamConnection, joined: string[], left: string[]) => void,
  ) {}

  send(message: ServerMessage): boolean {
    return this.sendRaw(JSON.stringify(message));
  }

  /** Sends an already serialised message (text frame), shared across receivers. */
  sendRaw(data: string | Buffer): boolean {
    if (this.state === 'closed') return false;
    // A reader that does not keep up is told to come back and resume, not buffered forever.
    if (this.ws.bufferedAmount > this.maxBufferedBytes) {
      this.close(StreamCloseCode.RESUME, 'too slow: reconnect and resume');
      return false;
    }
    this.ws.send(data, { binary: false });
    return true;
  }

  /**
   * Holds this socket's writes until `uncork`: frames of one burst of notes then leave in one
   * write (one syscall) instead of one each. ws keeps its socket private; without one, no-op.
   */
  cork(): boolean {
    const socket = (this.ws as unknown as { _socket?: Duplex })._socket;
    if (!socket || this.state === 'closed') return false;
    socket.cork();
    return true;
  }

  uncork(): void {
    (this.ws as unknown as { _socket?: Duplex })._socket?.uncork();
  }

  close(code: number, reason: string): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.pending = [];
    // Sends not yet handed to RoomService die with the socket (a revoked token writes nothing more).
    this.sendQueue = [];
    // Read again, so the peer's closing handshake is heard (what else arrives is ignored).
    if (this.readPaused) {
      this.readPaused = false;
      this.ws.resume();
    }
    try {
      this.ws.close(code, reason);
    } catch {
      this.ws.terminate();
    }
    // A peer that never answers the close handshake is cut after a grace period (long enough
    // for a slow reader to drain what is queued and see the close code).
    setTimeout(() => this.ws.terminate(), 10_000).unref();
  }

  get rooms(): Set<string> {
    return this.viewer.rooms;
  }

  wants(note: StreamNote): boolean {
    return admits(this.viewer, note);
  }

  /** Live delivery from the bus. */
  offer(note: StreamNote): void {
    if (this.state === 'replaying') this.pending.push(note);
    else if (this.state === 'live') this.deliver(note);
  }

  /** Sends one note (replayed or live) if it is new to this device. */
  deliver(note: StreamNote): void {
    if (note.position <= this.position || this.state === 'closed') return;
    if (!this.wants(note)) {
      this.position = note.position;
      return;
    }
    let unread: number | undefined;
    const event = note.kind === 'event' ? (note.data.event as import('@parley/schemas').ClientEvent | undefined) : undefined;
    if (event && this.unread.has(event.room_id)) {
      if (countsAsUnread(event, this.userId)) this.unread.set(event.room_id, (this.unread.get(event.room_id) ?? 0) + 1);
      unread = this.unread.get(event.room_id);
    }
    // Own read receipts clear the count (clients mark read at the newest message they show).
    if (note.kind === 'receipt' && note.data.user_id === this.userId && typeof note.data.room_id === 'string') {
      this.unread.set(note.data.room_id, 0);
    }
    const message = frameMessageFor(note, this.deviceId, unread);
    this.position = note.position;
    if (message) this.sendRaw(message);
    const { joined, left } = track(this.viewer, note);
    if (joined) {
      this.joins += 1;
      this.unread.set(joined, 0);
      this.onRoomsChanged(this, [joined], []);
    } else if (left) {
      this.unread.delete(left);
      this.onRoomsChanged(this, [], [left]);
    }
  }

  /** Ends replay: sends what arrived meanwhile, then goes live. */
  goLive(): void {
    const waiting = this.pending;
    this.pending = [];
    this.state = 'live';
    for (const note of waiting) this.deliver(note);
  }
}
