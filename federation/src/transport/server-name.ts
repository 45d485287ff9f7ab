import { isIP } from 'node:net';
import { isServerName } from '@parley/schemas';

/** The federation port when a server name gives none (docs/protocol.md). */
export const DEFAULT_FEDERATION_PORT = 8448;

export interface ServerAddress {
  /** DNS name (lower-cased) or IP literal without brackets. */
  host: string;
  port: number | undefined;
  /** 4 or 6 for an IP literal, 0 for a DNS name. */
  ipVersion: 0 | 4 | 6;
}

// WHATWG URL's host parser reads a name whose last label is a number (`0x7f.1`, `2130706433`)
// as an IPv4 address, and so does getaddrinfo(): such names are allowed only as dotted quads.
const NUMERIC_LABEL = /(?:^|\.)(?:0x[0-9a-f]*|[0-9]+)$/i;
const DOTTED_QUAD = /^(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$/;

/**
 * Splits a server name (docs/protocol.md: `a.example`, `127.0.0.1:8481`, `[::1]:8448`) into host and
 * port, or returns undefined for anything else. Never throws.
 */
export function parseServerName(name: unknown): ServerAddress | undefined {
  if (!isServerName(name)) return undefined;
  let host: string;
  let portText: string | undefined;
  if (name.startsWith('[')) {
    const close = name.indexOf(']');
    host = name.slice(1, close);
    portText = name.length > close + 1 ? name.slice(close + 2) : undefined;
    if (isIP(host) !== 6 || host.includes('%')) return undefined;
  } else {
    const colon = name.indexOf(':');
    host = colon < 0 ? name : name.slice(0, colon);
    portText = colon < 0 ? undefined : name.slice(colon + 1);
    if (NUMERIC_LABEL.test(host) && !DOTTED_QUAD.test(host)) return undefined;
  }
  let port: number | undefined;
  if (portText !== undefined) {
    if (!/^[1-9][0-9]{0,4}$/.test(portText)) return undefined;
    port = Number(portText);
    if (port > 65_535) return undefined;
  }
  const ipVersion = isIP(host) as 0 | 4 | 6;
  return { host: ipVersion === 0 ? host.toLowerCase() : host, port, ipVersion };
}

/** `host:port` with brackets around an IPv6 literal, as URLs and Host headers want it. */
export function formatHostPort(host: string, port: number): string {
  return `${isIP(host) === 6 ? `[${host}]` : host}:${port}`;
}
