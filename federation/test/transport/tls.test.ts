import { createHash, X509Certificate } from 'node:crypto';
import { mkdtemp, readdir, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { fingerprintOfPem, generateSelfSignedCertificate, loadOrCreateTlsCertificate } from '../../src/tls/index.js';
import { HOSTILE_VALUES } from '../support/hostile-values.js';

describe('generateSelfSignedCertificate', () => {
  it('makes an RSA 2048 certificate naming the server, with its SHA-256 fingerprint', async () => {
    const { certPem, keyPem, fingerprint } = await generateSelfSignedCertificate('b.test:8448', { days: 30 });
    const cert = new X509Certificate(certPem);
    expect(cert.subjectAltName).toBe('DNS:b.test');
    expect(cert.checkHost('b.test')).toBe('b.test');
    expect(cert.publicKey.asymmetricKeyDetails?.modulusLength).toBe(2048);
    expect(cert.ca).toBe(false);
    expect(cert.verify(cert.publicKey)).toBe(true);
    const days = (Date.parse(cert.validTo) - Date.now()) / 86_400_000;
    expect(days).toBeGreaterThan(29.9);
    expect(days).toBeLessThan(30.1);
    expect(keyPem).toContain('BEGIN PRIVATE KEY');
    expect(fingerprint).toBe(createHash('sha256').update(cert.raw).digest('base64url'));
    expect(fingerprint).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });

  it('names IP literals as IP addresses', async () => {
    expect(new X509Certificate((await generateSelfSignedCertificate('127.0.0.1:8481')).certPem).subjectAltName).toBe(
      'IP Address:127.0.0.1',
    );
    expect(new X509Certificate((await generateSelfSignedCertificate('[::1]:8481')).certPem).checkIP('::1')).toBe('::1');
  });

  it.each([['a b'], ['b.test/x'], [''], ['[::g]']])('throws a TypeError naming serverName for %j', async (name) => {
    await expect(generateSelfSignedCertificate(name)).rejects.toThrow(/^serverName: /);
  });

  it.each([[0], [1.5], [-1], [100_000]])('throws a TypeError naming options.days for %j', async (days) => {
    await expect(generateSelfSignedCertificate('b.test', { days })).rejects.toThrow(/^options\.days: /);
  });
});

describe('fingerprintOfPem', () => {
  it.each(HOSTILE_VALUES)('throws a TypeError for %s', (_name, value) => {
    expect(() => fingerprintOfPem(value as string)).toThrow(TypeError);
  });

  it('throws a TypeError for a damaged certificate', () => {
    expect(() => fingerprintOfPem('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n')).toThrow(TypeError);
  });
});

describe('loadOrCreateTlsCertificate', () => {
  let dir: string;
  beforeEach(async () => {
    dir = path.join(await mkdtemp(path.join(tmpdir(), 'parley-tls-')), 'tls');
  });
  afterEach(async () => {
    await rm(path.dirname(dir), { recursive: true, force: true });
  });

  it('creates tls.crt and tls.key (0600, in a 0700 directory) once, then reuses them', async () => {
    const notices: string[] = [];
    const first = await loadOrCreateTlsCertificate(dir, 'b.test', { onNotice: (m) => notices.push(m) });
    expect(first.created).toBe(true);
    expect(notices).toHaveLength(1);
    expect(((await stat(dir)).mode & 0o777).toString(8)).toBe('700');
    for (const name of ['tls.crt', 'tls.key']) expect(((await stat(path.join(dir, name))).mode & 0o777).toString(8)).toBe('600');
    expect((await readdir(dir)).sort()).toEqual(['tls.crt', 'tls.key']);
    const second = await loadOrCreateTlsCertificate(dir, 'b.test');
    expect(second).toEqual({ ...first, created: false });
  });

  it('settles concurrent first starts on one pair', async () => {
    const results = await Promise.all([1, 2, 3].map(() => loadOrCreateTlsCertificate(dir, 'b.test')));
    expect(new Set(results.map((r) => r.fingerprint)).size).toBe(1);
    expect((await readdir(dir)).sort()).toEqual(['tls.crt', 'tls.key']);
    expect((await loadOrCreateTlsCertificate(dir, 'b.test')).fingerprint).toBe(results[0]!.fingerprint);
  });

  it('replaces a certificate that expires soon or names another server', async () => {
    const short = await loadOrCreateTlsCertificate(dir, 'b.test', { days: 10 });
    const renewed = await loadOrCreateTlsCertificate(dir, 'b.test');
    expect(renewed.created).toBe(true);
    expect(renewed.fingerprint).not.toBe(short.fingerprint);
    const notices: string[] = [];
    const renamed = await loadOrCreateTlsCertificate(dir, 'c.test', { onNotice: (m) => notices.push(m) });
    expect(renamed.created).toBe(true);
    expect(notices[0]).toContain('does not name c.test');
    expect(new X509Certificate(renamed.certPem).checkHost('c.test')).toBe('c.test');
  });

  it('regenerates after an interrupted first start left only the key', async () => {
    const first = await loadOrCreateTlsCertificate(dir, 'b.test');
    await rm(path.join(dir, 'tls.crt'));
    // A key from a minute ago is a crash, not a concurrent start still writing its certificate.
    const aMinuteAgo = new Date(Date.now() - 60_000);
    await utimes(path.join(dir, 'tls.key'), aMinuteAgo, aMinuteAgo);
    const again = await loadOrCreateTlsCertificate(dir, 'b.test');
    expect(again.created).toBe(true);
    expect(again.fingerprint).not.toBe(first.fingerprint);
  });

  it('stops on damaged or mismatched files instead of replacing them', async () => {
    await loadOrCreateTlsCertificate(dir, 'b.test');
    const other = await generateSelfSignedCertificate('b.test');
    await writeFile(path.join(dir, 'tls.key'), other.keyPem);
    await expect(loadOrCreateTlsCertificate(dir, 'b.test')).rejects.toThrow(/does not match/);
    await writeFile(path.join(dir, 'tls.crt'), 'garbage');
    await expect(loadOrCreateTlsCertificate(dir, 'b.test')).rejects.toThrow(/cannot use the stored TLS certificate/);
    await rm(path.join(dir, 'tls.key'));
    await expect(loadOrCreateTlsCertificate(dir, 'b.test')).rejects.toThrow(/without .*tls\.key/);
  });

  it('throws a TypeError for a bad directory or server name', async () => {
    await expect(loadOrCreateTlsCertificate('', 'b.test')).rejects.toThrow(/^dir: /);
    await expect(loadOrCreateTlsCertificate(dir, 'b test')).rejects.toThrow(/^serverName: /);
  });
});
