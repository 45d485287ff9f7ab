import { createPrivateKey, randomBytes, X509Certificate } from 'node:crypto';
import { link, mkdir, open, readFile, rename, stat, unlink } from 'node:fs/promises';
import { isIP } from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  type CertificateOptions,
  certificateHost,
  fingerprintOfPem,
  generateSelfSignedCertificate,
  type TlsCertificate,
} from './certificate.js';

/**
 * The generated certificate on disk: `<dir>/tls.crt` and `<dir>/tls.key`, PEM, both 0600 in a
 * 0700 directory (created here). Reused on every start so the pinned fingerprint stays stable.
 */

export interface StoredTlsCertificate extends TlsCertificate {
  /** True when this call generated the pair (first start, or the old one expired or named another server). */
  created: boolean;
}

export interface StoreOptions extends CertificateOptions {
  /** Regenerate a certificate that expires within this many days; default 30. */
  renewDays?: number;
  /** Called with a sentence when a certificate is generated or replaced. */
  onNotice?: (message: string) => void;
}

export const CERT_FILE = 'tls.crt';
export const KEY_FILE = 'tls.key';
// A concurrent first start writes tls.key before tls.crt; this long is spent waiting for the second.
const PAIR_WAIT_MS = 5_000;

export async function loadOrCreateTlsCertificate(
  dir: string,
  serverName: string,
  options: StoreOptions = {},
): Promise<StoredTlsCertificate> {
  if (typeof dir !== 'string' || dir === '') throw new TypeError('dir: expected a directory path');
  const host = certificateHost(serverName);
  const renewDays = options.renewDays ?? 30;
  if (!Number.isInteger(renewDays) || renewDays < 0) throw new TypeError('options.renewDays: expected a non-negative integer');
  const notice = options.onNotice ?? (() => {});
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const certFile = path.join(dir, CERT_FILE);
  const keyFile = path.join(dir, KEY_FILE);

  let pair = await readPair(certFile, keyFile);
  if (pair.kind === 'key-only') pair = await waitForCertificate(certFile, keyFile);
  if (pair.kind === 'cert-only') throw new Error(`${certFile} exists without ${keyFile}: restore the key or remove the certificate`);
  if (pair.kind === 'pair') {
    const stale = staleReason(pair.certPem, pair.keyPem, host, renewDays);
    if (stale === undefined)
      return { certPem: pair.certPem, keyPem: pair.keyPem, fingerprint: fingerprintOfPem(pair.certPem), created: false };
    notice(`replacing the TLS certificate in ${dir}: ${stale}`);
    const fresh = await generateSelfSignedCertificate(serverName, options);
    await replacePair(dir, fresh);
    return { ...fresh, created: true };
  }
  if (pair.kind === 'key-only') notice(`${keyFile} had no certificate (an interrupted first start): generating a new pair`);

  const fresh = await generateSelfSignedCertificate(serverName, options);
  if (pair.kind === 'key-only') {
    await replacePair(dir, fresh);
    return { ...fresh, created: true };
  }
  if (await claimPair(dir, fresh)) {
    notice(`generated a self-signed TLS certificate for ${host} in ${dir} (fingerprint ${fresh.fingerprint})`);
    return { ...fresh, created: true };
  }
  // Another process of this server won the race: use its pair.
  const theirs = await waitForCertificate(certFile, keyFile);
  if (theirs.kind !== 'pair') throw new Error(`${dir}: another process started writing a TLS certificate and did not finish`);
  return { certPem: theirs.certPem, keyPem: theirs.keyPem, fingerprint: fingerprintOfPem(theirs.certPem), created: false };
}

type PairState = { kind: 'none' } | { kind: 'key-only' } | { kind: 'cert-only' } | { kind: 'pair'; certPem: string; keyPem: string };

async function readPair(certFile: string, keyFile: string): Promise<PairState> {
  const [certPem, keyPem] = await Promise.all([readIfExists(certFile), readIfExists(keyFile)]);
  if (certPem !== undefined && keyPem !== undefined) return { kind: 'pair', certPem, keyPem };
  if (keyPem !== undefined) return { kind: 'key-only' };
  if (certPem !== undefined) return { kind: 'cert-only' };
  return { kind: 'none' };
}

// Waits for the certificate of a key another process has just written; a key older than the
// wait is left over from a crash, and nothing is coming.
async function waitForCertificate(certFile: string, keyFile: string): Promise<PairState> {
  const keyTime = await stat(keyFile).then(
    (s) => s.mtimeMs,
    () => Date.now(),
  );
  const until = Math.min(Date.now(), keyTime) + PAIR_WAIT_MS;
  for (;;) {
    const state = await readPair(certFile, keyFile);
    if (state.kind !== 'key-only' || Date.now() >= until) return state;
    await sleep(50);
  }
}

async function readIfExists(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/**
 * Why a stored pair must be replaced, or undefined when it is good. A pair that cannot be read
 * or does not match throws instead: those files are damaged, and a silent new certificate
 * would hide it (the signing key's loader takes the same line).
 */
function staleReason(certPem: string, keyPem: string, host: string, renewDays: number): string | undefined {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
    if (!cert.checkPrivateKey(createPrivateKey(keyPem))) throw new Error('the key does not match the certificate');
  } catch (err) {
    throw new Error(`cannot use the stored TLS certificate: ${(err as Error).message}`);
  }
  const named = isIP(host) ? cert.checkIP(host) !== undefined : cert.checkHost(host, { subject: 'never' }) !== undefined;
  if (!named) return `it does not name ${host}`;
  if (Date.parse(cert.validTo) - Date.now() < renewDays * 86_400_000) return `it expires ${cert.validTo}`;
  return undefined;
}

/**
 * First start: link() the key into place, which fails if another process got there first (a
 * rename would silently overwrite it), then rename the certificate beside it. Readers that see
 * the key without the certificate wait for it (waitForCertificate).
 */
async function claimPair(dir: string, pair: TlsCertificate): Promise<boolean> {
  const tempKey = await writeTemp(dir, KEY_FILE, pair.keyPem);
  const tempCert = await writeTemp(dir, CERT_FILE, pair.certPem);
  try {
    await link(tempKey, path.join(dir, KEY_FILE));
  } catch (err) {
    await Promise.all([unlink(tempKey), unlink(tempCert)]);
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
  await unlink(tempKey);
  await rename(tempCert, path.join(dir, CERT_FILE));
  await syncDirectory(dir);
  return true;
}

async function replacePair(dir: string, pair: TlsCertificate): Promise<void> {
  const tempKey = await writeTemp(dir, KEY_FILE, pair.keyPem);
  const tempCert = await writeTemp(dir, CERT_FILE, pair.certPem);
  await rename(tempKey, path.join(dir, KEY_FILE));
  await rename(tempCert, path.join(dir, CERT_FILE));
  await syncDirectory(dir);
}

async function writeTemp(dir: string, name: string, text: string): Promise<string> {
  const temp = path.join(dir, `.${name}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  const handle = await open(temp, 'wx', 0o600);
  try {
    await handle.writeFile(text);
    await handle.sync();
  } finally {
    await handle.close();
  }
  return temp;
}

async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } catch {
    // some platforms cannot fsync a directory; the renames still happened
  } finally {
    await handle.close();
  }
}
