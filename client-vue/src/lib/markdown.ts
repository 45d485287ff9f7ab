/**
 * A small, safe Markdown subset → a tree of plain data. Nothing here produces HTML: the
 * MarkdownBody component turns this tree into Vue vnodes whose text is always a text node,
 * from a fixed list of tags, and whose only attribute from the message is a link's href,
 * which must be http(s) or mailto. So no message content can ever become markup.
 *
 * Supported: paragraphs and line breaks, **strong**, *em* / _em_, ~~strike~~, `code`,
 * fenced ``` code blocks, > quotes, - / 1. lists, [text](url) links and bare http(s) URLs,
 * backslash escapes, and user-ID mentions (`@bob:example.org`, rendered as a name pill).
 */
import { MENTION } from './mentions.js';

export type Inline =
  | { t: 'text'; v: string }
  | { t: 'strong' | 'em' | 'del'; c: Inline[] }
  | { t: 'code'; v: string }
  | { t: 'link'; href: string; c: Inline[] }
  | { t: 'mention'; id: string }
  | { t: 'br' };

export type Block = { t: 'p'; c: Inline[] } | { t: 'pre'; v: string } | { t: 'quote'; c: Block[] } | { t: 'ul' | 'ol'; items: Inline[][] };

const MAX_DEPTH = 6;
const ESCAPABLE = /[\\`*_~[\]()>#+\-.!|{}]/;
const FENCE = /^\s{0,3}```/;
const QUOTE = /^\s{0,3}>\s?/;
const BULLET = /^\s{0,3}[-*+]\s+/;
const NUMBERED = /^\s{0,3}\d{1,9}[.)]\s+/;

/** Only these schemes become links; everything else stays text. */
export function safeHref(raw: string): string | null {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return null;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:' && url.protocol !== 'mailto:') return null;
  return url.href;
}

export function parseMarkdown(source: string, depth = 0): Block[] {
  const lines = source.replace(/\r\n?/g, '\n').split('\n');
  const blocks: Block[] = [];
  let para: string[] = [];
  const flushPara = () => {
    if (para.length > 0) blocks.push({ t: 'p', c: parseLines(para, depth) });
    para = [];
  };
  let i = 0;
  while (i < lines.length) {
    const line = lines[i] as string;
    if (FENCE.test(line)) {
      flushPara();
      const body: string[] = [];
      i++;
      while (i < lines.length && !FENCE.test(lines[i] as string)) body.push(lines[i++] as string);
      i++; // the closing fence (or the end of the message)
      blocks.push({ t: 'pre', v: body.join('\n') });
      continue;
    }
    if (QUOTE.test(line) && depth < MAX_DEPTH) {
      flushPara();
      const body: string[] = [];
      while (i < lines.length && QUOTE.test(lines[i] as string)) body.push((lines[i++] as string).replace(QUOTE, ''));
      blocks.push({ t: 'quote', c: parseMarkdown(body.join('\n'), depth + 1) });
      continue;
    }
    const list = BULLET.test(line) ? BULLET : NUMBERED.test(line) ? NUMBERED : null;
    if (list) {
      flushPara();
      const items: Inline[][] = [];
      while (i < lines.length && list.test(lines[i] as string)) {
        items.push(parseInline((lines[i++] as string).replace(list, ''), depth + 1));
      }
      blocks.push({ t: list === BULLET ? 'ul' : 'ol', items });
      continue;
    }
    if (line.trim() === '') flushPara();
    else para.push(line);
    i++;
  }
  flushPara();
  return blocks;
}

function parseLines(lines: string[], depth: number): Inline[] {
  const out: Inline[] = [];
  lines.forEach((line, n) => {
    if (n > 0) out.push({ t: 'br' });
    out.push(...parseInline(line, depth));
  });
  return out;
}

function isWordChar(ch: string | undefined): boolean {
  return ch !== undefined && /[\p{L}\p{N}]/u.test(ch);
}

/** Finds the closing delimiter for an emphasis run that opened at `from`. */
function findClose(s: string, delim: string, from: number): number {
  let j = s.indexOf(delim, from);
  while (j >= 0) {
    const before = s[j - 1];
    const after = s[j + delim.length];
    const escaped = before === '\\';
    const single = delim.length === 1 && after === delim;
    const wordy = delim === '_' && isWordChar(after);
    if (j > from && before !== ' ' && !escaped && !single && !wordy) return j;
    j = s.indexOf(delim, j + delim.length + (single ? 1 : 0));
  }
  return -1;
}

const LINK = /^\[([^\]\n]{1,1000})\]\(([^()\s]{1,2048})\)/;
const BARE_URL = /^(?:https?:\/\/|mailto:)[^\s<>"]+/i;

export function parseInline(s: string, depth = 0): Inline[] {
  const out: Inline[] = [];
  let buf = '';
  const flush = () => {
    if (buf) out.push({ t: 'text', v: buf });
    buf = '';
  };
  let i = 0;
  while (i < s.length) {
    const ch = s[i] as string;
    const next = s[i + 1];
    if (ch === '\\' && next !== undefined && ESCAPABLE.test(next)) {
      buf += next;
      i += 2;
      continue;
    }
    if (ch === '`') {
      const j = s.indexOf('`', i + 1);
      if (j > i + 1) {
        flush();
        out.push({ t: 'code', v: s.slice(i + 1, j) });
        i = j + 1;
        continue;
      }
    }
    if (depth < MAX_DEPTH) {
      const double = s.slice(i, i + 2);
      if ((double === '**' || double === '__' || double === '~~') && s[i + 2] !== ' ' && s[i + 2] !== undefined) {
        const j = findClose(s, double, i + 2);
        if (j > i + 2) {
          flush();
          out.push({ t: double === '~~' ? 'del' : 'strong', c: parseInline(s.slice(i + 2, j), depth + 1) });
          i = j + 2;
          continue;
        }
      }
      if ((ch === '*' || ch === '_') && next !== undefined && next !== ' ' && next !== ch && !(ch === '_' && isWordChar(s[i - 1]))) {
        const j = findClose(s, ch, i + 1);
        if (j > i) {
          flush();
          out.push({ t: 'em', c: parseInline(s.slice(i + 1, j), depth + 1) });
          i = j + 1;
          continue;
        }
      }
      if (ch === '[') {
        const m = LINK.exec(s.slice(i));
        const href = m ? safeHref(m[2] as string) : null;
        if (m && href) {
          flush();
          out.push({ t: 'link', href, c: parseInline(m[1] as string, depth + 1) });
          i += m[0].length;
          continue;
        }
      }
    }
    if (ch === '@' && !isWordChar(s[i - 1]) && s[i - 1] !== '@' && s[i - 1] !== '_') {
      const m = MENTION.exec(s.slice(i, i + 330));
      if (m) {
        flush();
        out.push({ t: 'mention', id: m[0] });
        i += m[0].length;
        continue;
      }
    }
    if ((ch === 'h' || ch === 'H' || ch === 'm' || ch === 'M') && !isWordChar(s[i - 1])) {
      const m = BARE_URL.exec(s.slice(i));
      if (m) {
        const url = trimUrl(m[0]);
        const href = safeHref(url);
        if (href) {
          flush();
          out.push({ t: 'link', href, c: [{ t: 'text', v: url }] });
          i += url.length;
          continue;
        }
      }
    }
    buf += ch;
    i++;
  }
  flush();
  return out;
}

// Sentence punctuation after a URL is not part of it, nor is a ')' that closes a bracket
// opened before the URL.
function trimUrl(url: string): string {
  let end = url.length;
  while (end > 0 && /[.,;:!?'*_~]/.test(url[end - 1] as string)) end--;
  let u = url.slice(0, end);
  while (u.endsWith(')') && (u.match(/\(/g)?.length ?? 0) < (u.match(/\)/g)?.length ?? 0)) u = u.slice(0, -1);
  return u;
}

/** Plain text of a message for previews and notifications (markup characters kept). */
function inlineText(nodes: Inline[]): string {
  return nodes
    .map((n) => {
      if (n.t === 'text' || n.t === 'code') return n.v;
      if (n.t === 'mention') return n.id;
      if (n.t === 'br') return ' ';
      return inlineText(n.c);
    })
    .join('');
}

function blockText(blocks: Block[]): string {
  return blocks
    .map((b) => {
      if (b.t === 'p') return inlineText(b.c);
      if (b.t === 'pre') return '[code]';
      if (b.t === 'quote') return blockText(b.c);
      return b.items.map(inlineText).join(' ');
    })
    .join(' ');
}

/** One line of what a message says, its Markdown read (`**bold**` → bold), cut at `max`. */
export function plainPreview(body: string, max = 120): string {
  // Only the start is shown: no need to parse a 60 KB message to preview it.
  const flat = blockText(parseMarkdown(body.slice(0, max * 4)))
    .replace(/\s+/g, ' ')
    .trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}
