import type { ClientEvent } from '@parley/schemas';

/**
 * Pure timeline logic: merging pages and live events into one ordered list, applying
 * relations (edits, reactions, redactions) that arrive live, reconciling our pending sends
 * with the events the server confirms, and projecting everything into display rows (day
 * separators, grouping). Components and stores only call these.
 */

/** `queued`: accepted by our server, waiting for the room's host (another server) to be reachable. */
export type SendState = 'sending' | 'queued' | 'sent' | 'failed';

export interface UploadState {
  name: string;
  sent: number;
  total: number;
  /** A blob: URL of the local file while it uploads (images only). */
  previewUrl?: string;
}

/** Something we sent (or are sending) that the server has not shown back to us yet. */
export interface PendingEvent {
  txnId: string;
  roomId: string;
  /** `room.message`, `room.reaction`, or `room.redaction` (sent through the redact endpoint). */
  type: string;
  content: Record<string, unknown>;
  sender: string;
  ts: number;
  state: SendState;
  eventId?: string;
  error?: string;
  upload?: UploadState;
}

export interface ReactionCount {
  key: string;
  count: number;
  me: boolean;
}

export interface EditInfo {
  event_id: string;
  origin_ts: number;
  content: Record<string, unknown>;
}

export interface RelatesTo {
  type: string;
  event_id: string;
  key?: string;
}

export type Row =
  | { kind: 'day'; key: string; ts: number }
  | { kind: 'notice'; key: string; event: ClientEvent }
  | {
      kind: 'message';
      key: string;
      event: ClientEvent;
      /** Same sender as the message above, close in time: no name/avatar header. */
      grouped: boolean;
      pending?: PendingEvent;
      /** Latest edit's content (confirmed, or our own edit still on its way). */
      edit?: Record<string, unknown>;
      editPending: boolean;
      reactions: ReactionCount[];
      redacted: boolean;
      redacting: boolean;
    };

export const GROUP_WINDOW_MS = 5 * 60_000;
// State changes shown as one-line notices (roles and join rules are left out: every new room sets them).
const NOTICE_TYPES = new Set(['room.member', 'room.name', 'room.topic', 'room.create', 'room.avatar', 'room.pinned', 'room.encryption']);

export function relatesTo(content: Record<string, unknown>): RelatesTo | null {
  const rel = content.relates_to;
  if (typeof rel !== 'object' || rel === null) return null;
  const { type, event_id, key } = rel as Record<string, unknown>;
  if (typeof type !== 'string' || typeof event_id !== 'string') return null;
  return typeof key === 'string' ? { type, event_id, key } : { type, event_id };
}

export function isEdit(ev: { type: string; content: Record<string, unknown> }): boolean {
  return ev.type === 'room.message' && relatesTo(ev.content)?.type === 'replace';
}

export function isRedacted(ev: ClientEvent): boolean {
  return ev.unsigned?.redacted_because !== undefined;
}

export function txnIdOf(ev: ClientEvent): string | undefined {
  const txn = ev.unsigned?.txn_id;
  return typeof txn === 'string' ? txn : undefined;
}

/** Row key that survives the switch from pending to confirmed (so the row is not re-created). */
export function eventKey(ev: ClientEvent): string {
  const txn = txnIdOf(ev);
  return txn ? `t:${txn}` : ev.event_id;
}

function order(a: ClientEvent, b: ClientEvent): number {
  return (a.seq ?? Number.MAX_SAFE_INTEGER) - (b.seq ?? Number.MAX_SAFE_INTEGER) || a.origin_ts - b.origin_ts;
}

/**
 * Merges `incoming` into `base` (both ordered by seq), dropping duplicates; an incoming copy
 * of a known event replaces it (the server's aggregation is newer). With `live`, relations
 * that are new to the list are applied to their targets, since the server only aggregates
 * them into pages it serves later. History pages must pass `live: false`.
 */
export function mergeEvents(
  base: readonly ClientEvent[],
  incoming: readonly ClientEvent[],
  opts: { me: string; live: boolean },
): ClientEvent[] {
  if (incoming.length === 0) return base as ClientEvent[];
  const known = new Map<string, number>();
  base.forEach((ev, i) => {
    known.set(ev.event_id, i);
  });
  const out = base.slice();
  const fresh: ClientEvent[] = [];
  for (const ev of incoming) {
    const at = known.get(ev.event_id);
    if (at !== undefined) out[at] = ev;
    else if (!fresh.some((f) => f.event_id === ev.event_id)) fresh.push(ev);
  }
  if (fresh.length === 0) return out;
  fresh.sort(order);
  let merged: ClientEvent[];
  const last = out.at(-1);
  const first = out[0];
  if (!last || !first || order(fresh[0] as ClientEvent, last) > 0) merged = out.concat(fresh);
  else if (order(fresh.at(-1) as ClientEvent, first) < 0) merged = fresh.concat(out);
  else merged = out.concat(fresh).sort(order);
  if (opts.live) {
    // A target served in the same batch already carries the server's aggregation.
    const served = new Set(incoming.map((ev) => ev.event_id));
    const index = new Map<string, number>();
    merged.forEach((ev, i) => {
      if (!served.has(ev.event_id)) index.set(ev.event_id, i);
    });
    for (const ev of fresh) applyRelation(merged, index, ev, opts.me);
  }
  return merged;
}

function withUnsigned(ev: ClientEvent, patch: Record<string, unknown>): ClientEvent {
  return { ...ev, unsigned: { ...(ev.unsigned ?? {}), ...patch } };
}

export function reactionsOf(ev: ClientEvent): ReactionCount[] {
  const list = ev.unsigned?.reactions;
  return Array.isArray(list) ? (list as ReactionCount[]) : [];
}

export function editOf(ev: ClientEvent): EditInfo | undefined {
  const edit = ev.unsigned?.edit;
  return typeof edit === 'object' && edit !== null ? (edit as EditInfo) : undefined;
}

export function addReaction(list: readonly ReactionCount[], key: string, mine: boolean, delta: 1 | -1): ReactionCount[] {
  const out = list.map((r) => ({ ...r }));
  const found = out.find((r) => r.key === key);
  if (found) {
    found.count += delta;
    if (mine) found.me = delta > 0;
  } else if (delta > 0) {
    out.push({ key, count: 1, me: mine });
  }
  // Most used first; ties keep first-use order (Array.prototype.sort is stable).
  return out.filter((r) => r.count > 0).sort((a, b) => b.count - a.count);
}

/** Applies one live relation event to its target, in place in `events` (a fresh array). */
export function applyRelation(events: ClientEvent[], index: Map<string, number>, ev: ClientEvent, me: string): void {
  if (ev.type === 'room.redaction') {
    const redacts = ev.content.redacts;
    const at = typeof redacts === 'string' ? index.get(redacts) : undefined;
    if (at === undefined) return;
    const target = events[at] as ClientEvent;
    if (isRedacted(target)) return;
    if (target.type === 'room.reaction') {
      const rel = relatesTo(target.content);
      const parentAt = rel?.key ? index.get(rel.event_id) : undefined;
      if (rel?.key && parentAt !== undefined) {
        const parent = events[parentAt] as ClientEvent;
        events[parentAt] = withUnsigned(parent, { reactions: addReaction(reactionsOf(parent), rel.key, target.sender === me, -1) });
      }
    }
    const { edit: _edit, ...rest } = target.unsigned ?? {};
    events[at] = { ...target, content: {}, unsigned: { ...rest, redacted_because: ev.event_id } };
    return;
  }
  const rel = relatesTo(ev.content);
  if (!rel) return;
  const at = index.get(rel.event_id);
  if (at === undefined) return;
  const target = events[at] as ClientEvent;
  if (ev.type === 'room.reaction' && rel.type === 'annotation' && rel.key) {
    events[at] = withUnsigned(target, { reactions: addReaction(reactionsOf(target), rel.key, ev.sender === me, 1) });
  } else if (isEdit(ev) && ev.sender === target.sender && !isRedacted(target)) {
    const current = editOf(target);
    if (current && current.origin_ts > ev.origin_ts) return;
    const content = (ev.content.new_content as Record<string, unknown> | undefined) ?? {};
    events[at] = withUnsigned(target, { edit: { event_id: ev.event_id, origin_ts: ev.origin_ts, content } });
  }
}

/** Drops pending sends that the confirmed list now holds (matched by txn ID or event ID). */
export function reconcilePending(pending: readonly PendingEvent[], confirmed: readonly ClientEvent[]): PendingEvent[] {
  if (pending.length === 0) return pending as PendingEvent[];
  const txns = new Set<string>();
  const ids = new Set<string>();
  for (const ev of confirmed) {
    const txn = txnIdOf(ev);
    if (txn) txns.add(txn);
    ids.add(ev.event_id);
  }
  const left = pending.filter((p) => !txns.has(p.txnId) && !(p.eventId && ids.has(p.eventId)));
  return left.length === pending.length ? (pending as PendingEvent[]) : left;
}

/** The event a pending message will become, for display until the server confirms it. */
export function pendingAsEvent(p: PendingEvent): ClientEvent {
  return {
    event_id: p.eventId ?? `~${p.txnId}`,
    room_id: p.roomId,
    type: p.type,
    sender: p.sender,
    origin_ts: p.ts,
    content: p.content,
    unsigned: { txn_id: p.txnId },
  };
}

export function localDayKey(ts: number): string {
  const d = new Date(ts);
  return `${d.getFullYear()}-${d.getMonth() + 1}-${d.getDate()}`;
}

function displayable(ev: ClientEvent): 'message' | 'notice' | null {
  if (ev.type === 'room.message' || ev.type === 'room.encrypted') return isEdit(ev) ? null : 'message';
  return NOTICE_TYPES.has(ev.type) ? 'notice' : null;
}

/**
 * Display rows for the confirmed events plus our pending sends: messages (with edits and
 * reactions, ours overlaid optimistically), notices, and a day separator before each new
 * local day. Relation events themselves are not rows.
 */
export function buildRows(confirmed: readonly ClientEvent[], pending: readonly PendingEvent[]): Row[] {
  const pendingEdits = new Map<string, PendingEvent>();
  const pendingReactions = new Map<string, PendingEvent[]>();
  const pendingRedactions = new Set<string>();
  const pendingMessages: PendingEvent[] = [];
  for (const p of pending) {
    const rel = relatesTo(p.content);
    if (p.type === 'room.redaction') {
      if (p.state !== 'failed' && typeof p.content.redacts === 'string') pendingRedactions.add(p.content.redacts);
    } else if (p.type === 'room.reaction' && rel) {
      if (p.state !== 'failed') pendingReactions.set(rel.event_id, [...(pendingReactions.get(rel.event_id) ?? []), p]);
    } else if (rel?.type === 'replace') {
      if (p.state !== 'failed') pendingEdits.set(rel.event_id, p);
    } else {
      pendingMessages.push(p);
    }
  }

  const rows: Row[] = [];
  let lastDay = '';
  let prev: { sender: string; ts: number } | null = null;
  const push = (ev: ClientEvent, p?: PendingEvent) => {
    const kind = displayable(ev);
    if (!kind) return;
    const day = localDayKey(ev.origin_ts);
    if (day !== lastDay) {
      rows.push({ kind: 'day', key: `day:${day}`, ts: ev.origin_ts });
      lastDay = day;
      prev = null;
    }
    if (kind === 'notice') {
      rows.push({ kind: 'notice', key: ev.event_id, event: ev });
      prev = null;
      return;
    }
    let reactions = reactionsOf(ev);
    for (const r of pendingReactions.get(ev.event_id) ?? []) {
      const key = relatesTo(r.content)?.key;
      if (key && !reactions.some((x) => x.key === key && x.me)) reactions = addReaction(reactions, key, true, 1);
    }
    const pendingEdit = pendingEdits.get(ev.event_id);
    const edit = pendingEdit ? (pendingEdit.content.new_content as Record<string, unknown>) : editOf(ev)?.content;
    const grouped = prev !== null && prev.sender === ev.sender && ev.origin_ts - prev.ts < GROUP_WINDOW_MS;
    rows.push({
      kind: 'message',
      key: p ? `t:${p.txnId}` : eventKey(ev),
      event: ev,
      grouped,
      ...(p ? { pending: p } : {}),
      ...(edit ? { edit } : {}),
      editPending: pendingEdit !== undefined,
      reactions,
      redacted: isRedacted(ev),
      redacting: pendingRedactions.has(ev.event_id),
    });
    prev = { sender: ev.sender, ts: ev.origin_ts };
  };
  for (const ev of confirmed) push(ev);
  for (const p of pendingMessages) push(pendingAsEvent(p), p);
  return rows;
}

/** "Today", "Yesterday", else a full date in the reader's locale. */
export function dayLabel(ts: number, now: number = Date.now(), locale?: string): string {
  const day = localDayKey(ts);
  if (day === localDayKey(now)) return 'Today';
  if (day === localDayKey(now - 86_400_000)) return 'Yesterday';
  const sameYear = new Date(ts).getFullYear() === new Date(now).getFullYear();
  return new Intl.DateTimeFormat(locale, {
    weekday: 'long',
    day: 'numeric',
    month: 'long',
    ...(sameYear ? {} : { year: 'numeric' }),
  }).format(ts);
}

export function timeLabel(ts: number, locale?: string): string {
  return new Intl.DateTimeFormat(locale, { hour: '2-digit', minute: '2-digit' }).format(ts);
}

/** The newest confirmed event worth a read receipt (ours or anyone's, not a pending one). */
export function lastReadable(events: readonly ClientEvent[]): ClientEvent | undefined {
  for (let i = events.length - 1; i >= 0; i--) {
    const ev = events[i] as ClientEvent;
    if (ev.seq !== undefined) return ev;
  }
  return undefined;
}
