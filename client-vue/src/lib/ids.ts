/** Helpers around Parley identifiers that the UI needs (no validation beyond display). */

export interface SplitUserId {
  localpart: string;
  server: string;
}

/** `@alice:hs1.example` → { localpart: 'alice', server: 'hs1.example' }; null when not a user ID. */
export function splitUserId(userId: string): SplitUserId | null {
  if (!userId.startsWith('@')) return null;
  const colon = userId.indexOf(':');
  if (colon < 2 || colon === userId.length - 1) return null;
  return { localpart: userId.slice(1, colon), server: userId.slice(colon + 1) };
}

export function serverOf(id: string): string {
  const colon = id.indexOf(':');
  return colon < 0 ? '' : id.slice(colon + 1);
}

/** A user from another homeserver than ours (their server part is worth showing). */
export function isRemoteUser(userId: string, ourServer: string): boolean {
  const split = splitUserId(userId);
  return split !== null && split.server !== ourServer;
}

/** Display name if known, else the localpart. */
export function displayName(userId: string, names: ReadonlyMap<string, string | null> | undefined): string {
  const name = names?.get(userId);
  if (name) return name;
  return splitUserId(userId)?.localpart ?? userId;
}

/** Up to two letters for an avatar placeholder. */
export function initials(name: string): string {
  const words = name
    .replace(/^[@#!]/, '')
    .split(/[\s._-]+/)
    .filter(Boolean);
  const letters = words.length > 1 ? [words[0], words[1]] : [words[0] ?? '?'];
  return letters
    .map((w) => Array.from(w as string)[0] ?? '')
    .join('')
    .toUpperCase();
}

/** A stable hue for a user or room, so colours stay the same across sessions. */
export function hueOf(id: string): number {
  let h = 0;
  for (let i = 0; i < id.length; i++) h = (h * 31 + id.charCodeAt(i)) >>> 0;
  return h % 360;
}

/**
 * What the person typed into the "homeserver" field → a base URL. A bare name gets
 * https:// (http:// for localhost and loopback addresses, which rarely have TLS).
 */
export function homeserverUrl(input: string): string {
  const value = input.trim();
  if (value === '') throw new TypeError('Enter a homeserver address');
  const withScheme = /^https?:\/\//i.test(value)
    ? value
    : /^(localhost|127\.|\[::1\])/i.test(value)
      ? `http://${value}`
      : `https://${value}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new TypeError(`"${value}" is not a homeserver address`);
  }
  if (url.search || url.hash) throw new TypeError('A homeserver address has no ? or # part');
  return `${url.origin}${url.pathname.replace(/\/+$/, '')}`;
}

/** Room aliases start with #, room IDs with !; anything else is not joinable as typed. */
export function looksJoinable(value: string): boolean {
  return /^[#!][^\s:]+:[^\s]+$/.test(value.trim());
}
