import type { ClientEvent, Member } from '@parley/schemas';
import { displayName } from './ids.js';

/**
 * Mentions are user IDs written in the message text (`@bob:example.org`): the composer's
 * autocomplete inserts them, the renderer shows them as pills with the person's name, and
 * the sidebar counts unread messages that mention me. Nothing extra travels in the event,
 * so every client (and a plain-text reader) sees the same thing.
 */

// docs/protocol.md: localparts are [a-z0-9._=-]{1,64}; a server name is a host with an optional port.
export const MENTION = /^@[a-z0-9._=-]{1,64}:[A-Za-z0-9.-]*[A-Za-z0-9](?::\d{1,5})?/;
const MENTION_G = /(^|[^\p{L}\p{N}_@])(@[a-z0-9._=-]{1,64}:[A-Za-z0-9.-]*[A-Za-z0-9](?::\d{1,5})?)/gu;

/** Every user ID mentioned in a body (code spans and blocks included; it is text either way). */
export function mentionsIn(body: string): Set<string> {
  const out = new Set<string>();
  for (const m of body.matchAll(MENTION_G)) out.add(m[2] as string);
  return out;
}

/** The text a message shows now (its latest edit, if any). */
function currentBody(ev: ClientEvent): string {
  const edit = (ev.unsigned?.edit as { content?: Record<string, unknown> } | undefined)?.content;
  const body = (edit ?? ev.content).body;
  return typeof body === 'string' ? body : '';
}

/** A message from someone else that mentions `me` (edits count as their target, not again). */
export function mentionsMe(ev: ClientEvent, me: string): boolean {
  if (ev.type !== 'room.message' || ev.sender === me || ev.unsigned?.redacted_because) return false;
  const rel = ev.content.relates_to as { type?: string } | undefined;
  if (rel?.type === 'replace') return false;
  return mentionsIn(currentBody(ev)).has(me);
}

/** The `@query` being typed just before the caret, if any: where it starts and what it says so far. */
export function mentionQuery(text: string, caret: number): { start: number; query: string } | null {
  const before = text.slice(0, caret);
  const m = /(^|\s)@([^\s@]{0,64})$/.exec(before);
  if (!m) return null;
  return { start: caret - (m[2] as string).length - 1, query: m[2] as string };
}

/** Members matching a query by name or ID: joined first, prefix matches before substring ones. */
export function mentionCandidates(
  members: readonly Member[],
  query: string,
  names: ReadonlyMap<string, string | null>,
  me: string,
  max = 8,
): Member[] {
  const q = query.toLowerCase();
  // A complete user ID needs no completion (Enter sends it as typed).
  if (members.some((m) => m.user_id === `@${q}`)) return [];
  const scored: Array<{ m: Member; score: number }> = [];
  for (const m of members) {
    if (m.user_id === me || (m.membership !== 'join' && m.membership !== 'invite')) continue;
    const name = displayName(m.user_id, names).toLowerCase();
    const id = m.user_id.slice(1).toLowerCase();
    let score: number;
    if (!q) score = 2;
    else if (name.startsWith(q) || id.startsWith(q)) score = 0;
    else if (name.includes(q) || id.includes(q)) score = 1;
    else continue;
    if (m.membership !== 'join') score += 3;
    scored.push({ m, score });
  }
  return scored
    .sort((a, b) => a.score - b.score || displayName(a.m.user_id, names).localeCompare(displayName(b.m.user_id, names)))
    .slice(0, max)
    .map((s) => s.m);
}

/** Replaces `start..end` of the text (a typed `@query` or `:code`, or a selection); returns the text and the new caret. */
export function replaceRange(text: string, start: number, end: number, inserted: string): { text: string; caret: number } {
  return { text: text.slice(0, start) + inserted + text.slice(end), caret: start + inserted.length };
}
