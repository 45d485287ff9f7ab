import { lookup as dnsLookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import tls, { type TLSSocket } from 'node:tls';
import type { buildConnector } from 'undici';
import { fingerprintOfDer } from '../tls/certificate.js';
import { FederationError } from './errors.js';
import type { TransportLog } from './log.js';
import type { AddressPolicy } from './ssrf.js';

/**
 * The only way outbound federation opens a socket. undici would resolve the name and dial
 * whatever DNS said; this connector resolves it itself, keeps only addresses the
 * AddressPolicy allows, and dials the checked IP — so a name that resolves to a public
 * address for the check and to 127.0.0.1 for the connect (DNS rebinding) cannot happen.
 * Addresses are tried in the order the resolver gave them, each step logged (Prosody's
 * fallback chain). One deadline covers DNS, TCP and the TLS handshake.
 *
 * TLS: when the destination has pinned fingerprints, the certificate is accepted iff its
 * SHA-256 is one of them, self-signed or not (docs/protocol.md); otherwise WebPKI verification
 * against the system roots plus any extra CA, with the certificate checked for tlsServername.
 */

export interface LookupAddress {
  address: string;
  family: number;
}

/** Resolves a host name to all its addresses; the default is the system resolver (getaddrinfo), as undici's would be. */
export type HostLookup = (hostname: string) => Promise<readonly LookupAddress[]>;

export const systemLookup: HostLookup = (hostname) => dnsLookup(hostname, { all: true, order: 'verbatim' });

export interface DialTarget {
  /** The server name the connection is for: errors and logs name it. */
  destination: string;
  host: string;
  port: number;
  tlsServername: string;
}

/** 'verify': pins if known, else WebPKI. 'any': accept any certificate and report its fingerprint (see FederationClient). */
export type TlsTrust = 'verify' | 'any';

export interface ConnectorOptions {
  policy: AddressPolicy;
  lookup: HostLookup;
  /** The pinned fingerprints for this destination, asked again on every new connection. */
  pins: () => readonly string[] | undefined | Promise<readonly string[] | undefined>;
  trust: TlsTrust;
  ca: readonly string[] | undefined;
  timeoutMs: number;
  log: TransportLog;
  /** Told the fingerprint of every certificate accepted. */
  onPeerCertificate?: (fingerprint: string) => void;
}

// A resolver answer longer than this is cut: a connect deadline is spent on the first few anyway.
const MAX_ADDRESSES = 8;

export function guardedConnector(target: DialTarget, options: ConnectorOptions): buildConnector.connector {
  return (_undiciOptions, callback) => {
    let settled = false;
    let live: TLSSocket | undefined;
    const timer = setTimeout(() => {
      live?.destroy();
      settle(new FederationError('timeout', target.destination, `no TLS connection within ${options.timeoutMs} ms`));
    }, options.timeoutMs);
    const settle = (err: Error | null, socket?: TLSSocket) => {
      if (settled) {
        socket?.destroy();
        return;
      }
      settled = true;
      clearTimeout(timer);
      if (err) callback(err, null);
      else callback(null, socket!);
    };
    const attempt = {
      isOver: () => settled,
      track: (socket: TLSSocket) => {
        live = socket;
      },
    };
    connectChain(target, options, attempt).then(
      (socket) => settle(null, socket),
      (err: unknown) =>
        settle(err instanceof FederationError ? err : new FederationError('connect', target.destination, String(err), { cause: err })),
    );
  };
}

interface Attempt {
  isOver(): boolean;
  track(socket: TLSSocket): void;
}

async function connectChain(target: DialTarget, options: ConnectorOptions, attempt: Attempt): Promise<TLSSocket> {
  const { destination } = target;
  const addresses = await resolve(target, options.lookup);
  const allowed: string[] = [];
  for (const { address } of addresses) {
    if (options.policy.allowed(address)) allowed.push(address);
    else options.log.warn({ destination, host: target.host, address }, 'connect: refusing a non-public address (not allowlisted)');
  }
  if (allowed.length === 0) {
    const list = addresses.map((a) => a.address).join(', ');
    const what =
      isIP(target.host) !== 0 ? `${target.host} is a non-public address` : `${target.host} resolves only to non-public addresses (${list})`;
    throw new FederationError('ssrf', destination, `${what} and the allowlist does not cover it`);
  }
  const pins = options.trust === 'verify' ? await options.pins() : undefined;
  let lastError: unknown;
  for (const address of allowed) {
    if (attempt.isOver()) break;
    options.log.debug({ destination, address, port: target.port }, 'connect: trying');
    try {
      return await dial(address, target, options, pins && pins.length > 0 ? pins : undefined, attempt);
    } catch (err) {
      lastError = err;
      options.log.info({ destination, address, port: target.port, reason: (err as Error).message }, 'connect: address failed');
    }
  }
  throw lastError;
}

async function resolve(target: DialTarget, lookup: HostLookup): Promise<readonly LookupAddress[]> {
  if (isIP(target.host) !== 0) return [{ address: target.host, family: isIP(target.host) }];
  let addresses: readonly LookupAddress[];
  try {
    addresses = await lookup(target.host);
  } catch (err) {
    throw new FederationError(
      'dns',
      target.destination,
      `cannot resolve ${target.host}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      {
        cause: err,
      },
    );
  }
  if (!Array.isArray(addresses) || addresses.length === 0)
    throw new FederationError('dns', target.destination, `${target.host} has no addresses`);
  return addresses.slice(0, MAX_ADDRESSES);
}

function dial(
  address: string,
  target: DialTarget,
  options: ConnectorOptions,
  pins: readonly string[] | undefined,
  attempt: Attempt,
): Promise<TLSSocket> {
  const { destination } = target;
  const verifyWebPki = options.trust === 'verify' && pins === undefined;
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      host: address,
      port: target.port,
      // RFC 6066 §3: SNI carries DNS names only, never IP literals.
      servername: isIP(target.tlsServername) === 0 ? target.tlsServername : undefined,
      ALPNProtocols: ['http/1.1'],
      minVersion: 'TLSv1.2',
      rejectUnauthorized: verifyWebPki,
      ca: verifyWebPki && options.ca ? [...tls.rootCertificates, ...options.ca] : undefined,
      // The dialled IP is not the identity: the certificate must name the server.
      checkServerIdentity: (_host, cert) => tls.checkServerIdentity(target.tlsServername, cert),
    });
    attempt.track(socket);
    let phase: 'connect' | 'tls' = 'connect';
    const onError = (err: NodeJS.ErrnoException) => {
      socket.destroy();
      const what = phase === 'connect' ? `cannot connect to ${address}:${target.port}` : `TLS with ${address}:${target.port} failed`;
      reject(new FederationError(phase, destination, `${what}: ${err.code ?? err.message}`, { cause: err }));
    };
    socket.on('error', onError);
    // A peer that hangs up mid-handshake without an error, or our own deadline destroying the
    // socket, must still end this attempt (a rejection after resolve() is ignored).
    socket.once('close', () =>
      reject(new FederationError(phase, destination, `${address}:${target.port} closed the connection during the handshake`)),
    );
    socket.once('connect', () => {
      phase = 'tls';
      socket.setNoDelay(true);
      socket.setKeepAlive(true, 60_000);
    });
    socket.once('secureConnect', () => {
      const raw = socket.getPeerCertificate()?.raw;
      const fingerprint = raw ? fingerprintOfDer(raw) : '';
      if (pins !== undefined && !pins.includes(fingerprint)) {
        socket.destroy();
        reject(new FederationError('tls', destination, `certificate ${fingerprint || '(none)'} is not pinned for ${destination}`));
        return;
      }
      socket.removeListener('error', onError);
      options.onPeerCertificate?.(fingerprint);
      resolve(socket);
    });
  });
}
