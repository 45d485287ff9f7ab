import type { IncomingMessage } from 'node:http';

export interface ClientIpSettings {
  /** `http.trust_proxy`: believe X-Forwarded-For at all. */
  trustProxy: boolean;
  /** `http.trusted_proxy_hops`: how many entries at its end our own proxies appended. */
  proxyHops: number;
}

/**
 * The client address of a raw request (a WebSocket upgrade, which never reaches Koa) by the
 * rule Koa applies to `ctx.ip` (createApp): without a trusted proxy the socket's peer; behind
 * one, the first of the last `proxyHops` X-Forwarded-For entries — the address our outermost
 * proxy saw — never a leftmost entry the client wrote itself (issue 10, L3).
 */
export function clientIp(req: IncomingMessage, settings: ClientIpSettings): string {
  const peer = req.socket.remoteAddress ?? '';
  if (!settings.trustProxy) return peer;
  const header = req.headers['x-forwarded-for'];
  const value = Array.isArray(header) ? header.join(',') : (header ?? '');
  const entries = value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  return entries.slice(-settings.proxyHops)[0] || peer;
}
