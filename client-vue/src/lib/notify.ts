import type { ClientEvent } from '@parley/schemas';
import { displayName } from './ids.js';
import { plainPreview } from './markdown.js';
import { mentionsIn, mentionsMe } from './mentions.js';

export interface NotifyContext {
  me: string;
  /** The room is a direct message. */
  direct: boolean;
  /** The person is looking at this room right now (tab visible and focused, room open). */
  watching: boolean;
  enabled: boolean;
  permission: NotificationPermission | 'unsupported';
}

/** Whether a live event deserves a browser notification: a mention of me or a DM, while I am not looking. */
export function shouldNotify(ev: ClientEvent, ctx: NotifyContext): boolean {
  if (!ctx.enabled || ctx.permission !== 'granted' || ctx.watching) return false;
  if (ev.type !== 'room.message' || ev.sender === ctx.me || ev.unsigned?.redacted_because) return false;
  const rel = ev.content.relates_to as { type?: string } | undefined;
  if (rel?.type === 'replace' || rel?.type === 'annotation') return false;
  return ctx.direct || mentionsMe(ev, ctx.me);
}

/** Title and body of the notification: who, where, and the text with mentions shown as names. */
export function notificationText(
  ev: ClientEvent,
  roomLabel: string,
  direct: boolean,
  names: ReadonlyMap<string, string | null>,
): { title: string; body: string } {
  const who = displayName(ev.sender, names);
  const msgtype = ev.content.msgtype;
  let body = typeof ev.content.body === 'string' ? ev.content.body : '';
  if (ev.type === 'room.encrypted') body = 'Encrypted message';
  else if (msgtype === 'image') body = 'sent an image';
  else if (msgtype === 'file') body = 'sent a file';
  for (const id of mentionsIn(body)) body = body.split(id).join(`@${displayName(id, names)}`);
  return { title: direct ? who : `${who} in ${roomLabel}`, body: plainPreview(body, 140) };
}
