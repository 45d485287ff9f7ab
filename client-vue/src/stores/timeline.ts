import type { ClientEvent } from '@parley/schemas';
import { newTxnId, ParleyApiError } from '@parley/sdk';
import { defineStore } from 'pinia';
import { shallowReactive } from 'vue';
import { uploadWithProgress } from '../api/upload.js';
import { seedMediaUrl } from '../composables/useMediaUrl.js';
import { decryptTimeline } from '../lib/e2e.js';
import { describeError } from '../lib/errors.js';
import { lastReadable, mergeEvents, type PendingEvent, reactionsOf, reconcilePending, relatesTo } from '../lib/timeline.js';
import { useE2eStore } from './e2e.js';
import { useRoomsStore } from './rooms.js';
import { useSessionStore } from './session.js';

export interface RoomTimeline {
  roomId: string;
  /** Confirmed events (relations included), ordered by seq. Replaced, never mutated. */
  events: ClientEvent[];
  pending: PendingEvent[];
  /** Token for the next older page; null once the start of visible history is reached. */
  backToken: string | null;
  loaded: boolean;
  loadingBack: boolean;
  error: string | null;
  /** Highest seq we sent a read receipt for. */
  receiptSeq: number;
}

const FIRST_PAGE = 50;
const OLDER_PAGE = 100;
const CATCH_UP_PAGES = 20;
/** Waits before each automatic retry of a send that failed for a passing reason (network, 5xx, 429). */
const RETRY_DELAYS_MS = [500, 1000, 2000, 4000, 8000];

/** A failure worth trying again with the same txn ID: no answer, the server's fault, or "slow down". */
function isTransient(err: unknown): boolean {
  if (!(err instanceof ParleyApiError)) return true;
  return err.status === 0 || err.status === 429 || err.status >= 500;
}

/** One timeline per room: history paging, live events, and our sends with their states. */
export const useTimelineStore = defineStore('timeline', () => {
  const session = useSessionStore();
  const rooms = useRoomsStore();
  const e2e = useE2eStore();
  const timelines = shallowReactive(new Map<string, RoomTimeline>());

  function get(roomId: string): RoomTimeline {
    let tl = timelines.get(roomId);
    if (!tl) {
      tl = shallowReactive<RoomTimeline>({
        roomId,
        events: [],
        pending: [],
        backToken: null,
        loaded: false,
        loadingBack: false,
        error: null,
        receiptSeq: 0,
      });
      timelines.set(roomId, tl);
    }
    return tl;
  }

  function ingest(roomId: string, incoming: ClientEvent[], live: boolean): void {
    const tl = get(roomId);
    tl.events = mergeEvents(tl.events, incoming, { me: session.userId, live });
    tl.pending = reconcilePending(tl.pending, tl.events);
  }

  /** Live events from the stream (or the poller); also updates the room's preview. */
  function ingestLive(roomId: string, events: ClientEvent[], unread?: number): void {
    if (timelines.has(roomId)) ingest(roomId, events, true);
    for (const ev of events) rooms.noteEvent(ev, unread);
  }

  async function loadInitial(roomId: string): Promise<void> {
    const tl = get(roomId);
    if (tl.loaded) return;
    tl.loadingBack = true;
    tl.error = null;
    try {
      const page = await session.api.messages(roomId, { dir: 'b', limit: FIRST_PAGE });
      const events = page.chunk.slice().reverse();
      ingest(roomId, events, false);
      void e2e.history(roomId, events);
      // The room's first event is in this page: there is nothing older to ask for.
      tl.backToken = page.chunk.some((e) => e.type === 'room.create') ? null : (page.end ?? null);
      tl.loaded = true;
    } catch (err) {
      tl.error = describeError(err);
    } finally {
      tl.loadingBack = false;
    }
  }

  async function loadOlder(roomId: string): Promise<void> {
    const tl = get(roomId);
    if (!tl.loaded || tl.loadingBack || tl.backToken === null) return;
    tl.loadingBack = true;
    try {
      const page = await session.api.messages(roomId, { dir: 'b', from: tl.backToken, limit: OLDER_PAGE });
      const events = page.chunk.slice().reverse();
      ingest(roomId, events, false);
      void e2e.history(roomId, events);
      tl.backToken = page.chunk.some((e) => e.type === 'room.create') ? null : (page.end ?? null);
      tl.error = null;
    } catch (err) {
      tl.error = describeError(err);
    } finally {
      tl.loadingBack = false;
    }
  }

  /**
   * Fetches what is new since the newest event we hold, reading back from the live edge
   * until the pages meet what we have (pagination tokens stay opaque). Used by the poller
   * and after a reconnect. Re-served known events refresh their edits and reactions.
   */
  async function catchUp(roomId: string): Promise<void> {
    const tl = get(roomId);
    if (!tl.loaded) return loadInitial(roomId);
    const newest = tl.events.at(-1)?.seq ?? 0;
    const fresh: ClientEvent[] = [];
    let from: string | undefined;
    for (let n = 0; n < CATCH_UP_PAGES; n++) {
      const page = await session.api.messages(roomId, { dir: 'b', limit: n === 0 ? 20 : OLDER_PAGE, ...(from ? { from } : {}) });
      fresh.push(...page.chunk);
      const oldest = page.chunk.at(-1)?.seq ?? 0;
      if (!page.end || oldest <= newest) {
        const events = fresh.reverse();
        ingest(roomId, events, true);
        void e2e.history(roomId, events);
        return;
      }
      from = page.end;
    }
    // Too far behind to bridge: start again from the live edge.
    tl.events = [];
    tl.loaded = false;
    await loadInitial(roomId);
  }

  function setPending(roomId: string, txnId: string, change: Partial<PendingEvent>): void {
    const tl = get(roomId);
    tl.pending = tl.pending.map((p) => (p.txnId === txnId ? { ...p, ...change } : p));
  }

  async function confirm(roomId: string, eventId: string, refetch?: string): Promise<void> {
    // Fetching the event at once turns "sent" into the confirmed row without waiting for
    // the stream or the poller; duplicates are merged away.
    const [ev, target] = await Promise.all([
      session.api.event(roomId, eventId),
      refetch ? session.api.event(roomId, refetch).catch(() => null) : Promise.resolve(null),
    ]);
    ingest(roomId, target ? [ev, target] : [ev], target === null);
    rooms.noteEvent(ev);
  }

  // Sends of one room go out one at a time, in the order they were made (as Element and
  // Discord do): concurrent requests could reach the server, and so the room, in any order.
  const lines = new Map<string, Promise<void>>();
  function inLine(roomId: string, work: () => Promise<void>): Promise<void> {
    const next = (lines.get(roomId) ?? Promise.resolve()).then(work);
    lines.set(roomId, next);
    void next.finally(() => {
      if (lines.get(roomId) === next) lines.delete(roomId);
    });
    return next;
  }

  /** Queues a send behind the room's earlier ones; resolves once it is confirmed (or failed). */
  function transmit(p: PendingEvent): Promise<void> {
    let after: Promise<void> = Promise.resolve();
    return inLine(p.roomId, async () => {
      after = (await transmitNow(p)).confirmed;
    }).then(() => after);
  }

  /** One send with retries; the fetch of the confirmed event runs outside the line (wrapped, so it is not awaited here). */
  async function transmitNow(p: PendingEvent): Promise<{ confirmed: Promise<void> }> {
    const done = { confirmed: Promise.resolve() };
    const api = session.api;
    for (let attempt = 0; ; attempt++) {
      // Discarded while waiting in line: nothing to send.
      if (!get(p.roomId).pending.some((x) => x.txnId === p.txnId)) return done;
      try {
        // Redactions stay in the clear (the server must act on them); all else in an encrypted room is sealed.
        const res =
          p.type === 'room.redaction'
            ? await api.redact(p.roomId, p.content.redacts as string, undefined, p.txnId)
            : e2e.isEncrypted(p.roomId)
              ? { event_id: await e2e.send(p.roomId, p.type, p.content, p.txnId), queued: false }
              : await api.send(p.roomId, p.type, p.content, p.txnId);
        const eventId = res.event_id;
        if (res.queued) {
          // The room's host is unreachable: our server keeps it and hands it over when it is
          // back; the row turns into the confirmed event when the host's copy arrives.
          setPending(p.roomId, p.txnId, { state: 'queued', eventId, error: undefined });
          return done;
        }
        setPending(p.roomId, p.txnId, { state: 'sent', eventId, error: undefined });
        const target = p.type === 'room.redaction' ? (p.content.redacts as string) : relatesTo(p.content)?.event_id;
        return { confirmed: confirm(p.roomId, eventId, p.type === 'room.message' ? undefined : target).catch(() => {}) };
      } catch (err) {
        const delay = RETRY_DELAYS_MS[attempt];
        if (delay === undefined || !isTransient(err)) {
          setPending(p.roomId, p.txnId, { state: 'failed', error: describeError(err) });
          return done;
        }
        // Same txn ID on every attempt: the server stores it once however often it arrives.
        const wait = err instanceof ParleyApiError && err.retryAfterMs ? Math.max(delay, err.retryAfterMs) : delay;
        await new Promise((resolve) => setTimeout(resolve, wait));
      }
    }
  }

  function enqueue(roomId: string, type: string, content: Record<string, unknown>, extra: Partial<PendingEvent> = {}): PendingEvent {
    const p: PendingEvent = {
      txnId: newTxnId(),
      roomId,
      type,
      content,
      sender: session.userId,
      ts: Date.now(),
      state: 'sending',
      ...extra,
    };
    const tl = get(roomId);
    tl.pending = [...tl.pending, p];
    return p;
  }

  function sendText(roomId: string, body: string, replyTo?: string, relation: 'reply' | 'thread' = 'reply'): Promise<void> {
    const content: Record<string, unknown> = { msgtype: 'text', body };
    if (replyTo) content.relates_to = { type: relation, event_id: replyTo };
    return transmit(enqueue(roomId, 'room.message', content));
  }

  function edit(roomId: string, eventId: string, body: string): Promise<void> {
    return transmit(
      enqueue(roomId, 'room.message', {
        msgtype: 'text',
        body: `* ${body}`,
        new_content: { msgtype: 'text', body },
        relates_to: { type: 'replace', event_id: eventId },
      }),
    );
  }

  /** The room's events as this device reads them (decrypted, encrypted relations applied). */
  function readable(roomId: string): ClientEvent[] {
    const events = get(roomId).events;
    return e2e.isEncrypted(roomId) ? decryptTimeline(events, e2e.views, session.userId) : events;
  }

  async function toggleReaction(roomId: string, eventId: string, key: string): Promise<void> {
    const encrypted = e2e.isEncrypted(roomId);
    const events = readable(roomId);
    const target = events.find((e) => e.event_id === eventId);
    const mine = target && reactionsOf(target).some((r) => r.key === key && r.me);
    if (!mine) return transmit(enqueue(roomId, 'room.reaction', { relates_to: { type: 'annotation', event_id: eventId, key } }));
    // Taking a reaction back redacts our reaction event, which the aggregate does not name
    // (in an encrypted room only this device can find it, among what it decrypted).
    const related = encrypted
      ? events.filter((e) => e.type === 'room.reaction' && relatesTo(e.content)?.event_id === eventId)
      : await session.api.relations(roomId, eventId, 'annotation');
    const own = related.find((e) => e.sender === session.userId && relatesTo(e.content)?.key === key);
    if (own) await redact(roomId, own.event_id, eventId);
  }

  /** Redacts an event; `parent` is a message whose aggregates change with it (a reaction's target). */
  async function redact(roomId: string, eventId: string, parent?: string): Promise<void> {
    await transmit(enqueue(roomId, 'room.redaction', { redacts: eventId }));
    if (parent) {
      const fresh = await session.api.event(roomId, parent).catch(() => null);
      if (fresh) ingest(roomId, [fresh], false);
    }
  }

  async function sendFile(roomId: string, file: File): Promise<void> {
    const isImage = /^image\/(png|jpeg|gif|webp|avif)$/.test(file.type);
    const previewUrl = isImage ? URL.createObjectURL(file) : undefined;
    const info: Record<string, unknown> = { size: file.size, mimetype: file.type || 'application/octet-stream' };
    if (isImage) Object.assign(info, await imageSize(previewUrl as string));
    const p = enqueue(
      roomId,
      'room.message',
      { msgtype: isImage ? 'image' : 'file', body: file.name, info },
      { upload: { name: file.name, sent: 0, total: file.size, ...(previewUrl ? { previewUrl } : {}) } },
    );
    await uploadFile(p, file);
  }

  const files = new Map<string, File>();
  async function uploadFile(p: PendingEvent, file: File): Promise<void> {
    files.set(p.txnId, file);
    setPending(p.roomId, p.txnId, { state: 'sending', error: undefined });
    try {
      // In an encrypted room the server gets ciphertext under a neutral name and type; the
      // key, hash, name and type travel inside the encrypted message.
      let body: Blob = file;
      let extra: Record<string, unknown> = {};
      if (e2e.isEncrypted(p.roomId)) {
        const sealed = await e2e.encryptFile(new Uint8Array(await file.arrayBuffer()));
        body = new Blob([sealed.ciphertext as BlobPart], { type: 'application/octet-stream' });
        extra = { file: sealed.info };
      }
      const res = await uploadWithProgress(session.getClient(), body, body === file ? file.name : 'attachment', (sent, total) => {
        const cur = get(p.roomId).pending.find((x) => x.txnId === p.txnId);
        if (cur?.upload) setPending(p.roomId, p.txnId, { upload: { ...cur.upload, sent, total } });
      });
      const cur = get(p.roomId).pending.find((x) => x.txnId === p.txnId) ?? p;
      const content = { ...cur.content, ...extra, url: res.content_uri };
      if (cur.upload?.previewUrl) seedMediaUrl(res.content_uri, cur.upload.previewUrl);
      setPending(p.roomId, p.txnId, { content });
      files.delete(p.txnId);
      await transmit({ ...cur, content });
    } catch (err) {
      setPending(p.roomId, p.txnId, { state: 'failed', error: describeError(err) });
    }
  }

  /** Sends a failed event again with the same txn ID, so the server never stores it twice. */
  function retry(roomId: string, txnId: string): Promise<void> {
    const p = get(roomId).pending.find((x) => x.txnId === txnId);
    if (!p) return Promise.resolve();
    const file = files.get(txnId);
    if (file && typeof p.content.url !== 'string') return uploadFile(p, file);
    setPending(roomId, txnId, { state: 'sending', error: undefined });
    return transmit({ ...p, state: 'sending' });
  }

  function discard(roomId: string, txnId: string): void {
    const tl = get(roomId);
    const p = tl.pending.find((x) => x.txnId === txnId);
    if (p?.upload?.previewUrl && typeof p.content.url !== 'string') URL.revokeObjectURL(p.upload.previewUrl);
    files.delete(txnId);
    tl.pending = tl.pending.filter((x) => x.txnId !== txnId);
  }

  /** Moves the read marker to the newest event when it is newer than the last one we sent. */
  async function markRead(roomId: string): Promise<void> {
    const tl = get(roomId);
    const last = lastReadable(tl.events);
    if (!last?.seq || last.seq <= tl.receiptSeq) return;
    tl.receiptSeq = last.seq;
    rooms.markReadLocally(roomId);
    try {
      await session.api.markRead(roomId, last.event_id);
    } catch {
      tl.receiptSeq = 0; // try again next time the bottom is in view
    }
  }

  function reset(): void {
    timelines.clear();
    files.clear();
  }

  return {
    timelines,
    get,
    ingestLive,
    loadInitial,
    loadOlder,
    catchUp,
    sendText,
    edit,
    toggleReaction,
    redact,
    sendFile,
    retry,
    discard,
    markRead,
    readable,
    reset,
  };
});

function imageSize(url: string): Promise<{ w?: number; h?: number }> {
  return new Promise((resolve) => {
    const img = new Image();
    img.onload = () => resolve({ w: img.naturalWidth, h: img.naturalHeight });
    img.onerror = () => resolve({});
    img.src = url;
  });
}
