/**
 * Pure rules for media: what a text file is, what may be shown inline, how filenames are
 * cleaned and encoded, and which byte range a Range header asks for.
 */

export const FILENAME_MAX_CHARS = 255;

/**
 * Served inline with their own Content-Type. Everything else — HTML, SVG, XML, scripts,
 * PDF (viewers run its JavaScript), archives, unknown bytes — is sent as an
 * application/octet-stream attachment. Close to Synapse's list, minus CSS and JSON,
 * which a chat client never needs inline.
 */
const INLINE_TYPES: ReadonlySet<string> = new Set([
  'text/plain',
  'image/png',
  'image/jpeg',
  'image/gif',
  'image/apng',
  'image/webp',
  'image/avif',
  'video/mp4',
  'video/webm',
  'video/ogg',
  'video/quicktime',
  'audio/mp4',
  'audio/x-m4a',
  'audio/webm',
  'audio/aac',
  'audio/mpeg',
  'audio/ogg',
  'audio/wav',
  'audio/flac',
]);

/** The type without parameters, lower-cased (`audio/ogg; codecs=opus` → `audio/ogg`). */
export function mimeEssence(type: string): string {
  return (type.split(';')[0] ?? '').trim().toLowerCase();
}

export function isInlineSafe(contentType: string): boolean {
  return INLINE_TYPES.has(mimeEssence(contentType));
}

// WHATWG MIME Sniffing §7.1 "identifying a resource with an unknown MIME type": these tags
// make a browser treat text as HTML when followed by a space or `>`.
const HTML_TAGS = [
  '!doctype html',
  'html',
  'head',
  'script',
  'iframe',
  'h1',
  'div',
  'font',
  'table',
  'a',
  'style',
  'title',
  'b',
  'body',
  'br',
  'p',
  '!--',
];

/**
 * Classifies bytes already known to be UTF-8 text (file-type recognised nothing). Markup
 * gets a markup type so it is never served inline; the rest is text/plain.
 */
export function sniffText(head: Uint8Array): string {
  let text = new TextDecoder('utf-8', { ignoreBOM: false }).decode(head.subarray(0, 1445));
  text = text.replace(/^[\t\n\f\r ]+/, '').toLowerCase();
  if (!text.startsWith('<')) return 'text/plain; charset=utf-8';
  for (const tag of HTML_TAGS) {
    const after = text.charAt(tag.length + 1);
    if (text.startsWith(`<${tag}`) && (tag === '!--' || after === ' ' || after === '>' || after === '\t' || after === '\n')) {
      return 'text/html';
    }
  }
  if (/^<svg[\s>]/.test(text) || (text.startsWith('<?xml') && text.includes('<svg'))) return 'image/svg+xml';
  // Any other opening tag, processing instruction or declaration: treat as markup.
  if (/^<[a-z!?/]/.test(text)) return 'application/xml';
  return 'text/plain; charset=utf-8';
}

// C0/C1 controls, bidi overrides and isolates, BOM and zero-width joiners that could
// disguise an extension (`photo\u202Egnp.exe`).
const UNSAFE_FILENAME_CHARS = /[\u0000-\u001f\u007f-\u009f\u061c\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]/g;

/**
 * The name to store: the last path component, without controls or bidi tricks, trimmed.
 * Returns null when nothing usable is left. Length is checked by the caller on the result.
 */
export function sanitizeFilename(raw: string): string | null {
  let name = raw.toWellFormed();
  name = name.slice(Math.max(name.lastIndexOf('/'), name.lastIndexOf('\\')) + 1);
  name = name.replace(UNSAFE_FILENAME_CHARS, '').trim();
  if (name === '' || name === '.' || name === '..') return null;
  return name;
}

/**
 * RFC 6266 Content-Disposition with an ASCII `filename` fallback and the exact name in
 * `filename*` (RFC 8187, formerly 5987: UTF-8, percent-encoded outside attr-char).
 */
export function contentDisposition(kind: 'inline' | 'attachment', filename: string | null): string {
  if (!filename) return kind;
  const fallback = filename.replace(/[^\x20-\x7e]|["\\%]/gu, '_');
  return `${kind}; filename="${fallback}"; filename*=UTF-8''${encodeAttrValue(filename)}`;
}

// attr-char (RFC 8187 §3.2.1) is ALPHA / DIGIT / "!#$&+-.^_`|~"; encodeURIComponent also
// leaves ' ( ) * alone, which must be encoded here.
function encodeAttrValue(value: string): string {
  return encodeURIComponent(value.toWellFormed()).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

export type RangeDecision = { kind: 'full' } | { kind: 'partial'; start: number; end: number } | { kind: 'unsatisfiable' };

/**
 * One `bytes=` range (RFC 9110 §14.2). Multiple ranges, other units and syntax errors
 * are ignored (the whole file is sent), which §14.2 allows.
 */
export function parseRange(header: string | undefined, size: number): RangeDecision {
  if (!header || size === 0) return { kind: 'full' };
  const match = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!match || (match[1] === '' && match[2] === '')) return { kind: 'full' };
  const first = match[1] as string;
  const last = match[2] as string;
  if (first === '') {
    // Suffix range: the last N bytes.
    const length = Number(last);
    if (length === 0) return { kind: 'unsatisfiable' };
    return { kind: 'partial', start: Math.max(0, size - length), end: size - 1 };
  }
  const start = Number(first);
  const end = last === '' ? size - 1 : Math.min(Number(last), size - 1);
  if (!Number.isSafeInteger(start) || start >= size) return { kind: 'unsatisfiable' };
  if (end < start) return { kind: 'full' };
  return { kind: 'partial', start, end };
}

/**
 * If-None-Match against our one strong ETag (RFC 9110 §13.1.2, weak comparison). Done
 * here rather than with Koa's `ctx.fresh`, which treats the `Cache-Control: no-cache`
 * that fetch adds to every conditional request as "always send the body".
 */
export function etagMatches(ifNoneMatch: string | undefined, etag: string): boolean {
  if (!ifNoneMatch) return false;
  if (ifNoneMatch.trim() === '*') return true;
  return ifNoneMatch.split(',').some((tag) => tag.trim().replace(/^W\//, '') === etag);
}
