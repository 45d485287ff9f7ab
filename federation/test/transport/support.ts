import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { TlsCertificate } from '../../src/tls/index.js';
import { authenticateRequest, type KeyLookup, type TransportLog } from '../../src/transport/index.js';

export interface TestServer {
  port: number;
  server: Server;
  /** Sockets the server accepted, to check that the client closed them. */
  sockets: Set<Socket>;
  close(): Promise<void>;
}

export async function startHttps(cert: TlsCertificate, handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<TestServer> {
  const server = createServer({ cert: cert.certPem, key: cert.keyPem }, handler);
  const sockets = new Set<Socket>();
  server.on('secureConnection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    server,
    sockets,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

export async function readBody(req: IncomingMessage): Promise<string> {
  let text = '';
  for await (const chunk of req) text += chunk;
  return text;
}

/** A homeserver's federation endpoint in miniature: authenticate once, then echo who asked. */
export function authenticatingHandler(ourName: string, keys: KeyLookup) {
  return async (req: IncomingMessage, res: ServerResponse) => {
    const text = await readBody(req);
    const content = text === '' ? undefined : JSON.parse(text);
    const result = await authenticateRequest(
      req.headers.authorization,
      { method: req.method!, uri: req.url!, destination: ourName, content },
      keys,
    );
    if (!result.ok) return json(res, 401, { errcode: result.code, error: result.reason });
    json(res, 200, { origin: result.origin, keyId: result.keyId, method: req.method, uri: req.url, content: content ?? null });
  };
}

/** Collects log lines so a test can read the fallback chain. */
export function recordingLog(): TransportLog & { lines: Array<{ level: string; message: string; fields: object }> } {
  const lines: Array<{ level: string; message: string; fields: object }> = [];
  const at = (level: string) => (fields: object, message: string) => {
    lines.push({ level, message, fields });
  };
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn') };
}

export const loopbackLookup = async (hostname: string) => {
  if (hostname.endsWith('.test')) return [{ address: '127.0.0.1', family: 4 }];
  throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' });
};
