import { generateKeyPair, randomBytes, X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import { promisify } from 'node:util';
import { sha256B64u } from '../canonical/hash.js';

/**
 * Self-signed TLS certificates for the federation listener (docs/protocol.md): a server without a
 * configured certificate makes one at first start and publishes its fingerprint in its signed
 * key document, and peers pin that fingerprint instead of asking a CA.
 *
 * node-forge writes X.509 but can sign it only with RSA (no ECDSA or Ed25519 certificates),
 * so the key is RSA 2048. node:crypto generates the key natively (forge's pure-JS key
 * generation takes seconds); forge only assembles and signs the certificate.
 */

export interface TlsCertificate {
  certPem: string;
  keyPem: string;
  /** Unpadded base64url SHA-256 of the DER certificate: what key documents publish and peers pin. */
  fingerprint: string;
}

export interface CertificateOptions {
  /** Validity in days from now; default 3650. Pinning ignores expiry, WebPKI does not. */
  days?: number;
}

export const DEFAULT_CERTIFICATE_DAYS = 3650;
const MAX_CERTIFICATE_DAYS = 36_500;
// Peers whose clocks run a little behind must still see the certificate as valid.
const BACKDATE_MS = 5 * 60_000;

const generateKeyPairAsync = promisify(generateKeyPair);

export async function generateSelfSignedCertificate(serverName: string, options: CertificateOptions = {}): Promise<TlsCertificate> {
  const host = certificateHost(serverName);
  const days = options.days ?? DEFAULT_CERTIFICATE_DAYS;
  if (!Number.isInteger(days) || days < 1 || days > MAX_CERTIFICATE_DAYS) {
    throw new TypeError(`options.days: expected an integer from 1 to ${MAX_CERTIFICATE_DAYS}`);
  }
  const { privateKey, publicKey } = await generateKeyPairAsync('rsa', { modulusLength: 2048 });
  const keyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  // node-forge (pure JS, large) loads only when a certificate is made, not with every server.
  const { default: forge } = await import('node-forge');

  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(publicKey.export({ type: 'spki', format: 'pem' }) as string);
  // RFC 5280 §4.1.2.2: a positive integer of at most 20 octets; clearing the top bit keeps it positive.
  const serial = randomBytes(16);
  serial[0]! &= 0x7f;
  cert.serialNumber = serial.toString('hex');
  const now = Date.now();
  cert.validity.notBefore = new Date(now - BACKDATE_MS);
  cert.validity.notAfter = new Date(now + days * 86_400_000);
  const subject = [{ name: 'commonName', value: host }];
  cert.setSubject(subject);
  cert.setIssuer(subject);
  cert.setExtensions([
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true, clientAuth: true },
    // RFC 6125 §6.4.4: clients match the subjectAltName, never the CN, when a SAN is present.
    { name: 'subjectAltName', altNames: [isIP(host) ? { type: 7, ip: host } : { type: 2, value: host }] },
    { name: 'subjectKeyIdentifier' },
  ]);
  cert.sign(forge.pki.privateKeyFromPem(keyPem), forge.md.sha256.create());
  const certPem = forge.pki.certificateToPem(cert);
  return { certPem, keyPem, fingerprint: fingerprintOfPem(certPem) };
}

/** The fingerprint (unpadded base64url SHA-256 of the DER form) of a PEM certificate. Throws a TypeError for anything else. */
export function fingerprintOfPem(certPem: string): string {
  if (typeof certPem !== 'string' || !certPem.includes('-----BEGIN CERTIFICATE-----')) {
    throw new TypeError('certPem: expected a PEM certificate');
  }
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch (err) {
    throw new TypeError(`certPem: not a readable certificate (${(err as Error).message})`);
  }
  return fingerprintOfDer(cert.raw);
}

/** The fingerprint of a DER certificate, as a TLS peer presents it (`getPeerCertificate().raw`). */
export function fingerprintOfDer(der: Uint8Array): string {
  if (!(der instanceof Uint8Array) || der.length === 0) throw new TypeError('der: expected certificate bytes');
  return sha256B64u(der);
}

/**
 * The host part of a server name (`a.test`, `127.0.0.1:8481`, `[::1]:8448`), which is what a
 * certificate names: ports are not part of a TLS identity.
 */
export function certificateHost(serverName: string): string {
  if (typeof serverName !== 'string' || serverName === '' || serverName.length > 255) {
    throw new TypeError('serverName: expected a server name');
  }
  const bracketed = /^\[([0-9A-Fa-f:.]+)\](?::\d{1,5})?$/.exec(serverName);
  if (bracketed) {
    if (isIP(bracketed[1]!) !== 6) throw new TypeError('serverName: not a valid IPv6 literal');
    return bracketed[1]!.toLowerCase();
  }
  const host = serverName.replace(/:\d{1,5}$/, '');
  if (isIP(host) === 4) return host;
  if (!/^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/.test(host)) {
    throw new TypeError('serverName: expected a DNS name or IP literal with an optional port');
  }
  return host.toLowerCase();
}
