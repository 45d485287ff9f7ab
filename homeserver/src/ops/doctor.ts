import { createPrivateKey, X509Certificate } from 'node:crypto';
import { lookup } from 'node:dns/promises';
import { existsSync, readFileSync } from 'node:fs';
import { stat, statfs } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import { certificateHost } from '@parley/federation/tls';
import { isPublicAddress } from '@parley/federation/transport';
import { Redis } from 'ioredis';
import pg from 'pg';
import type { Config } from '../config.js';

/**
 * `parley doctor`: looks at a configuration and the machine it runs on and says, one line
 * per check, what is wrong and how to fix it. It changes nothing. Each check answers `ok`,
 * `warn` (works, but an operator should know) or `fail` (the server will not work as
 * intended); the command exits 1 when any check fails.
 */

export type Status = 'ok' | 'warn' | 'fail';
export interface Finding {
  check: string;
  status: Status;
  detail: string;
}

export interface DoctorOptions {
  /** Below this much free disk under the data directory, `disk` fails (default 1 GiB). */
  minFreeBytes?: number;
  /** Certificates expiring sooner than this warn (default 14 days). */
  certWarnMs?: number;
  now?: number;
  /** The Node version judged (default the running one's, process.versions.node). */
  nodeVersion?: string;
  /** Deadline for each network probe (default 3 s). */
  timeoutMs?: number;
  /**
   * Asks another server whether it can reach this one's federation port (`doctor --peer`): the
   * only check made from outside. Rejects when the peer could not even be asked.
   */
  askPeer?: { peer: string; ask: () => Promise<{ reachable: boolean; error?: string }> };
}

const GiB = 1024 ** 3;
const DAY = 86_400_000;

function finding(check: string, status: Status, detail: string): Finding {
  return { check, status, detail };
}

function nodeVersion(version: string): Finding {
  const major = Number(version.split('.')[0]);
  if (major < 22) return finding('node', 'warn', `Node ${version} is past its end of life: run Node 24 LTS`);
  return finding('node', 'ok', `Node ${version}`);
}

async function nearestExisting(dir: string): Promise<string> {
  let current = path.resolve(dir);
  while (!existsSync(current)) current = path.dirname(current);
  return current;
}

async function dataDir(config: Config): Promise<Finding> {
  if (!existsSync(config.data_dir)) return finding('data_dir', 'warn', `${config.data_dir} does not exist yet: the first start creates it`);
  const st = await stat(config.data_dir);
  if (!st.isDirectory()) return finding('data_dir', 'fail', `${config.data_dir} is not a directory`);
  if (st.mode & 0o022) {
    return finding(
      'data_dir',
      'fail',
      `${config.data_dir} is writable by other users (mode ${(st.mode & 0o777).toString(8)}): chmod 700 it`,
    );
  }
  if (st.mode & 0o044) {
    return finding(
      'data_dir',
      'warn',
      `${config.data_dir} is readable by other users (mode ${(st.mode & 0o777).toString(8)}): chmod 700 it`,
    );
  }
  return finding('data_dir', 'ok', `${config.data_dir} (mode ${(st.mode & 0o777).toString(8)})`);
}

async function disk(config: Config, minFree: number): Promise<Finding> {
  const dir = await nearestExisting(config.data_dir);
  const fs = await statfs(dir);
  const free = fs.bavail * fs.bsize;
  const text = `${(free / GiB).toFixed(1)} GiB free under ${dir}`;
  if (free < minFree)
    return finding('disk', 'fail', `${text}: below ${(minFree / GiB).toFixed(1)} GiB; media uploads and the database will fail`);
  return finding('disk', 'ok', text);
}

/** GET over HTTP or HTTPS (any certificate: this only asks who answers), JSON or null. */
function probeJson(url: string, timeoutMs: number): Promise<Record<string, unknown> | null> {
  return new Promise((resolve) => {
    const get = url.startsWith('https:') ? https.get : http.get;
    const req = get(url, { timeout: timeoutMs, rejectUnauthorized: false }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > 65_536) req.destroy();
        else chunks.push(c);
      });
      res.on('end', () => {
        try {
          resolve(
            res.statusCode && res.statusCode < 300 ? (JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>) : null,
          );
        } catch {
          resolve(null);
        }
      });
      res.on('error', () => resolve(null));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(null));
  });
}

/**
 * A port is fine when this Parley server answers on it (`isOurs` judges the probe's JSON),
 * or when nothing listens and we may bind it.
 */
async function port(
  name: string,
  host: string,
  portNo: number,
  probeUrl: string,
  isOurs: (body: Record<string, unknown>) => boolean,
  timeoutMs: number,
): Promise<Finding> {
  if (portNo === 0) return finding(name, 'ok', 'a free port is chosen at start (0)');
  const body = await probeJson(probeUrl, timeoutMs);
  if (body && isOurs(body)) return finding(name, 'ok', `this Parley server answers on ${host}:${portNo}`);
  const outcome = await new Promise<string | null>((resolve) => {
    const srv = net.createServer();
    srv.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    srv.listen(portNo, host, () => srv.close(() => resolve(null)));
  });
  if (outcome === null) return finding(name, 'ok', `${host}:${portNo} is free`);
  if (outcome === 'EADDRINUSE') return finding(name, 'fail', `${host}:${portNo} is in use by another program`);
  if (outcome === 'EACCES')
    return finding(name, 'fail', `${host}:${portNo} needs privileges to bind (use a port above 1023 behind a proxy)`);
  return finding(name, 'fail', `cannot bind ${host}:${portNo}: ${outcome}`);
}

async function database(config: Config, timeoutMs: number): Promise<Finding> {
  if (!config.database.url) return finding('database', 'ok', `embedded Postgres in ${path.join(config.data_dir, 'postgres')}`);
  const client = new pg.Client({ connectionString: config.database.url, connectionTimeoutMillis: timeoutMs });
  try {
    await client.connect();
    const { rows } = await client.query<{ v: string }>("select current_setting('server_version') as v");
    const major = Number(String(rows[0]?.v).split('.')[0]);
    if (major < 14) return finding('database', 'warn', `PostgreSQL ${rows[0]?.v}: Parley is tested on 15 and later`);
    return finding('database', 'ok', `PostgreSQL ${rows[0]?.v}`);
  } catch (err) {
    return finding('database', 'fail', `cannot connect to database.url: ${(err as Error).message}`);
  } finally {
    await client.end().catch(() => {});
  }
}

async function redis(config: Config, timeoutMs: number): Promise<Finding> {
  if (!config.redis.url) return finding('redis', 'ok', 'not configured: one process, in-process delivery and pub/sub');
  const client = new Redis(config.redis.url, {
    lazyConnect: true,
    connectTimeout: timeoutMs,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
  });
  client.on('error', () => {});
  try {
    await client.connect();
    let policy: string | undefined;
    try {
      const answer = (await client.config('GET', 'maxmemory-policy')) as string[];
      policy = answer[1];
    } catch {
      return finding('redis', 'warn', 'CONFIG GET is refused here: make sure maxmemory-policy is noeviction');
    }
    if (policy !== 'noeviction') {
      return finding('redis', 'fail', `maxmemory-policy is ${policy}: set it to noeviction, or Redis may drop queued delivery jobs`);
    }
    return finding('redis', 'ok', 'maxmemory-policy noeviction');
  } catch (err) {
    return finding('redis', 'fail', `cannot connect to redis.url: ${(err as Error).message}`);
  } finally {
    client.disconnect();
  }
}

function tls(config: Config, now: number, warnMs: number): Finding {
  if (!config.federation.enabled) return finding('tls', 'ok', 'federation is off');
  const configured = Boolean(config.federation.tls_cert_file && config.federation.tls_key_file);
  const certFile = config.federation.tls_cert_file ?? path.join(config.data_dir, 'tls', 'tls.crt');
  const keyFile = config.federation.tls_key_file ?? path.join(config.data_dir, 'tls', 'tls.key');
  if (!existsSync(certFile)) {
    if (configured) return finding('tls', 'fail', `federation.tls_cert_file ${certFile} does not exist`);
    return finding('tls', 'ok', 'no certificate yet: a self-signed one is made at first start and published by fingerprint');
  }
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(readFileSync(certFile));
  } catch (err) {
    return finding('tls', 'fail', `${certFile} is not a PEM certificate: ${(err as Error).message}`);
  }
  try {
    if (!cert.checkPrivateKey(createPrivateKey(readFileSync(keyFile)))) {
      return finding('tls', 'fail', `${keyFile} is not the key of ${certFile}`);
    }
  } catch (err) {
    return finding('tls', 'fail', `cannot read the TLS key ${keyFile}: ${(err as Error).message}`);
  }
  const notAfter = Date.parse(cert.validTo);
  if (Date.parse(cert.validFrom) > now) return finding('tls', 'fail', `${certFile} is not valid before ${cert.validFrom}`);
  if (notAfter <= now) return finding('tls', 'fail', `${certFile} expired on ${cert.validTo}`);
  const host = certificateHost(config.server_name);
  const names = net.isIP(host) ? cert.checkIP(host) : cert.checkHost(host);
  if (!names) return finding('tls', 'fail', `${certFile} does not name ${host} (subject: ${cert.subject.replace(/\n/g, ', ')})`);
  const days = Math.floor((notAfter - now) / DAY);
  if (notAfter - now < warnMs) return finding('tls', 'warn', `${certFile} expires in ${days} days (${cert.validTo}): renew it`);
  return finding('tls', 'ok', `${configured ? 'configured' : 'self-signed'} certificate for ${host}, valid ${days} more days`);
}

/**
 * Whether other servers can find this one by its name. A name that does not resolve, or
 * resolves only to private addresses, cannot be reached from the internet (unless other
 * servers map it statically, as a LAN or a test set-up does).
 */
async function reachability(config: Config): Promise<Finding> {
  if (!config.federation.enabled) return finding('server_name', 'ok', 'federation is off');
  if (!config.federation.listen) {
    return finding('server_name', 'ok', `no inbound port: other servers reach this one through the relay ${config.relay.use}`);
  }
  const host = certificateHost(config.server_name);
  if (host === 'localhost' || host.endsWith('.localhost')) {
    return finding(
      'server_name',
      'warn',
      `${config.server_name} is only reachable from this machine: set server_name to a public DNS name to federate`,
    );
  }
  let addresses: string[];
  if (net.isIP(host)) addresses = [host];
  else {
    try {
      addresses = (await lookup(host, { all: true })).map((a) => a.address);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      return finding('server_name', 'fail', `${host} does not resolve (${code}): other servers cannot find this one`);
    }
  }
  if (!addresses.some((a) => isPublicAddress(a))) {
    return finding(
      'server_name',
      'warn',
      `${host} resolves only to non-public addresses (${addresses.join(', ')}): only allowlisted peers can reach it`,
    );
  }
  return finding('server_name', 'ok', `${host} resolves to ${addresses.join(', ')}`);
}

/**
 * `--peer`: the peer dials our federation port as its deliveries would. When it cannot even
 * authenticate our question it could not fetch our keys — which it does over that same port.
 */
async function fromOutside(peer: string, ask: () => Promise<{ reachable: boolean; error?: string }>): Promise<Finding> {
  try {
    const answer = await ask();
    if (answer.reachable) return finding('reachability', 'ok', `${peer} reached this server's federation port`);
    return finding('reachability', 'fail', `${peer} cannot reach this server's federation port: ${answer.error ?? 'no reason given'}`);
  } catch (err) {
    const message = (err as Error).message;
    if (/401|UNKNOWN_KEY|key/i.test(message)) {
      return finding(
        'reachability',
        'fail',
        `${peer} could not fetch this server's keys, so it cannot reach the federation port either (${message})`,
      );
    }
    return finding('reachability', 'warn', `could not ask ${peer}: ${message}`);
  }
}

export async function doctor(config: Config, options: DoctorOptions = {}): Promise<Finding[]> {
  const now = options.now ?? Date.now();
  const timeoutMs = options.timeoutMs ?? 3000;
  const httpHost = config.http.host || '0.0.0.0';
  const probeHost = httpHost === '0.0.0.0' || httpHost === '::' ? '127.0.0.1' : httpHost;
  const fedHost = config.federation.host || '0.0.0.0';
  const fedProbeHost = fedHost === '0.0.0.0' || fedHost === '::' ? '127.0.0.1' : fedHost;
  const checks: Array<Promise<Finding> | Finding> = [
    nodeVersion(options.nodeVersion ?? process.versions.node),
    dataDir(config),
    disk(config, options.minFreeBytes ?? GiB),
    port(
      'http_port',
      httpHost,
      config.http.port,
      `http://${probeHost}:${config.http.port}/health`,
      (b) => typeof b.status === 'string',
      timeoutMs,
    ),
    config.federation.enabled && !config.federation.listen
      ? finding('federation_port', 'ok', `federation.listen is off: inbound federation arrives through the relay ${config.relay.use}`)
      : config.federation.enabled
        ? port(
            'federation_port',
            fedHost,
            config.federation.port,
            `https://${fedProbeHost}:${config.federation.port}/federation/v1/keys`,
            (b) => b.server_name === config.server_name,
            timeoutMs,
          )
        : finding('federation_port', 'ok', 'federation is off'),
    database(config, timeoutMs),
    redis(config, timeoutMs),
    tls(config, now, options.certWarnMs ?? 14 * DAY),
    reachability(config),
    ...(options.askPeer ? [fromOutside(options.askPeer.peer, options.askPeer.ask)] : []),
  ];
  return Promise.all(checks);
}

export function formatFindings(findings: Finding[]): string {
  const width = Math.max(...findings.map((f) => f.check.length));
  return `${findings.map((f) => `${f.status.padEnd(4)}  ${f.check.padEnd(width)}  ${f.detail}`).join('\n')}\n`;
}
