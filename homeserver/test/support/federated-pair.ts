import { freePort } from './net.js';
import { startTestServer, type TestServer } from './server.js';

export interface FederatedPair {
  /** hs1.test */
  a: TestServer;
  /** hs2.test */
  b: TestServer;
  /** Their federation ports. */
  ports: { a: number; b: number };
}

/**
 * Two test servers, hs1.test and hs2.test, that reach each other's federation listener over
 * real TLS on loopback through a static map; `extraStatics` adds names to that map on both.
 */
export async function startFederatedPair(
  extraStatics: (ports: FederatedPair['ports']) => Record<string, string> = () => ({}),
): Promise<FederatedPair> {
  const ports = { a: await freePort(), b: await freePort() };
  const statics = { 'hs1.test': `127.0.0.1:${ports.a}`, 'hs2.test': `127.0.0.1:${ports.b}`, ...extraStatics(ports) };
  const a = await startTestServer({ server_name: 'hs1.test', federation: { port: ports.a, static_servers: statics } });
  try {
    const b = await startTestServer({ server_name: 'hs2.test', federation: { port: ports.b, static_servers: statics } });
    return { a, b, ports };
  } catch (err) {
    await a.close();
    throw err;
  }
}
