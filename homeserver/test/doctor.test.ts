import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { generateSelfSignedCertificate } from '@parley/federation/tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config, DeepPartial } from '../src/config.js';
import { doctor, type Finding } from '../src/ops/doctor.js';
import { type Federation, type FedServer, startFederation } from './support/federation.js';
import { freePort, until } from './support/net.js';
import { redisAnswers } from './support/redis.js';
import { startTestServer, type TestServer, testConfig } from './support/server.js';

const REDIS_BIN = ['/usr/bin/redis-server', '/usr/local/bin/redis-server'].find((b) => existsSync(b));

/** `parley doctor` finds each misconfiguration it claims to find, and passes a good set-up. */
describe('parley doctor', () => {
  let server: TestServer;
  let dir: string;
  let databaseUrl: string;

  const byCheck = (findings: Finding[], name: string): Finding => {
    const f = findings.find((x) => x.check === name);
    if (!f) throw new Error(`no ${name} check`);
    return f;
  };
  const config = (overrides: DeepPartial<Config> = {}, dataDir = path.join(dir, 'data')): Config =>
    testConfig(databaseUrl, dataDir, { http: { port: 0 }, federation: { port: 0 }, server_name: 'chat.example.org', ...overrides });

  beforeAll(async () => {
    server = await startTestServer({ server_name: 'doctor.test' });
    databaseUrl = server.config.database.url as string;
    dir = await mkdtemp(path.join(tmpdir(), 'parley-doctor-'));
    await mkdir(path.join(dir, 'data'), { mode: 0o700 });
  });
  afterAll(async () => {
    await server?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('a running server with its own ports, database, Redis and certificate passes', async () => {
    const c = server.config;
    const findings = await doctor({
      ...c,
      http: { ...c.http, port: server.port },
      federation: { ...c.federation, port: server.federation?.port as number },
      redis: { url: 'redis://127.0.0.1:6379', key_prefix: 'x:', cluster: false },
    });
    // doctor.test is a test name that resolves nowhere; everything else must pass.
    expect(byCheck(findings, 'server_name')).toMatchObject({ status: 'fail' });
    expect(findings.filter((f) => f.status === 'fail' && f.check !== 'server_name')).toEqual([]);
    expect(byCheck(findings, 'http_port').detail).toMatch(/this Parley server answers/);
    expect(byCheck(findings, 'federation_port').detail).toMatch(/this Parley server answers/);
    expect(byCheck(findings, 'database').detail).toMatch(/PostgreSQL \d+/);
    expect(byCheck(findings, 'tls')).toMatchObject({ status: 'ok' });
  });

  it('a port held by another program fails', async () => {
    const squatter = net.createServer((s) => s.end('HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n'));
    const port = await freePort();
    await new Promise<void>((r) => squatter.listen(port, '127.0.0.1', r));
    try {
      const f = byCheck(await doctor(config({ http: { host: '127.0.0.1', port } })), 'http_port');
      expect(f).toMatchObject({ status: 'fail' });
      expect(f.detail).toMatch(/in use by another program/);
    } finally {
      squatter.close();
    }
  });

  it('a data directory other users may write fails', async () => {
    const open = path.join(dir, 'open');
    await mkdir(open);
    await chmod(open, 0o777);
    const f = byCheck(await doctor(config({}, open)), 'data_dir');
    expect(f).toMatchObject({ status: 'fail' });
    expect(f.detail).toMatch(/writable by other users/);
  });

  it('a data directory other users may read warns, a file in its place fails, a missing one is named', async () => {
    const readable = path.join(dir, 'readable');
    await mkdir(readable);
    await chmod(readable, 0o755);
    const r = byCheck(await doctor(config({}, readable)), 'data_dir');
    expect(r).toMatchObject({ status: 'warn' });
    expect(r.detail).toMatch(/readable by other users \(mode 755\)/);
    const file = path.join(dir, 'a-file');
    await writeFile(file, '');
    expect(byCheck(await doctor(config({}, file)), 'data_dir')).toMatchObject({ status: 'fail', detail: `${file} is not a directory` });
    const missing = byCheck(await doctor(config({}, path.join(dir, 'not-yet'))), 'data_dir');
    expect(missing).toMatchObject({ status: 'warn' });
    expect(missing.detail).toMatch(/does not exist yet/);
  });

  it('a Node past its end of life warns', async () => {
    const old = byCheck(await doctor(config(), { nodeVersion: '20.19.0' }), 'node');
    expect(old).toMatchObject({ status: 'warn' });
    expect(old.detail).toMatch(/20\.19\.0 is past its end of life/);
    expect(byCheck(await doctor(config(), { nodeVersion: '24.1.0' }), 'node')).toMatchObject({ status: 'ok' });
  });

  it('too little free disk fails', async () => {
    const f = byCheck(await doctor(config(), { minFreeBytes: Number.MAX_SAFE_INTEGER }), 'disk');
    expect(f).toMatchObject({ status: 'fail' });
  });

  it('an unreachable database fails and names database.url', async () => {
    const port = await freePort();
    const f = byCheck(
      await doctor({ ...config(), database: { url: `postgres://x@127.0.0.1:${port}/x`, pool_max: 1, embedded_port: null } }),
      'database',
    );
    expect(f).toMatchObject({ status: 'fail' });
    expect(f.detail).toMatch(/database\.url/);
  });

  it.runIf(REDIS_BIN)('Redis that may evict keys fails', async () => {
    const port = await freePort();
    const child: ChildProcess = spawn(
      REDIS_BIN as string,
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--maxmemory-policy', 'allkeys-lru'],
      { stdio: 'ignore' },
    );
    try {
      await until(() => redisAnswers(`redis://127.0.0.1:${port}`));
      const f = byCheck(await doctor(config({ redis: { url: `redis://127.0.0.1:${port}`, key_prefix: 'd:' } })), 'redis');
      expect(f).toMatchObject({ status: 'fail' });
      expect(f.detail).toMatch(/allkeys-lru.*noeviction/);
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('a Redis nobody answers on fails and names redis.url', async () => {
    const port = await freePort();
    const f = byCheck(await doctor(config({ redis: { url: `redis://127.0.0.1:${port}`, key_prefix: 'd:' } })), 'redis');
    expect(f).toMatchObject({ status: 'fail' });
    expect(f.detail).toMatch(/cannot connect to redis\.url/);
  });

  it.runIf(REDIS_BIN)('a Redis that refuses CONFIG GET warns that the policy could not be checked', async () => {
    const port = await freePort();
    // An ACL user that may do everything but CONFIG (as managed Redis services often are).
    const child = spawn(
      REDIS_BIN as string,
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'].concat([
        '--user',
        'default',
        'on',
        'nopass',
        '~*',
        '&*',
        '+@all',
        '-config',
      ]),
      { stdio: 'ignore' },
    );
    try {
      await until(() => redisAnswers(`redis://127.0.0.1:${port}`));
      const f = byCheck(await doctor(config({ redis: { url: `redis://127.0.0.1:${port}`, key_prefix: 'd:' } })), 'redis');
      expect(f).toMatchObject({ status: 'warn' });
      expect(f.detail).toMatch(/CONFIG GET is refused/);
    } finally {
      child.kill('SIGKILL');
    }
  });

  describe('TLS', () => {
    let certFile: string;
    let keyFile: string;
    let otherKeyFile: string;
    beforeAll(async () => {
      const cert = await generateSelfSignedCertificate('chat.example.org', { days: 10 });
      const other = await generateSelfSignedCertificate('chat.example.org', { days: 10 });
      certFile = path.join(dir, 'tls.crt');
      keyFile = path.join(dir, 'tls.key');
      otherKeyFile = path.join(dir, 'other.key');
      await writeFile(certFile, cert.certPem);
      await writeFile(keyFile, cert.keyPem);
      await writeFile(otherKeyFile, other.keyPem);
    });
    const tlsOf = (overrides: DeepPartial<Config>, options: Parameters<typeof doctor>[1] = {}) =>
      doctor(config(overrides), options).then((f) => byCheck(f, 'tls'));

    it('a valid certificate for the server name passes, and one about to expire warns', async () => {
      const files = { federation: { tls_cert_file: certFile, tls_key_file: keyFile } };
      expect(await tlsOf(files, { certWarnMs: 86_400_000 })).toMatchObject({ status: 'ok' });
      const soon = await tlsOf(files);
      expect(soon).toMatchObject({ status: 'warn' });
      expect(soon.detail).toMatch(/expires in (9|10) days/);
    });
    it('an expired certificate fails', async () => {
      const f = await tlsOf({ federation: { tls_cert_file: certFile, tls_key_file: keyFile } }, { now: Date.now() + 40 * 86_400_000 });
      expect(f).toMatchObject({ status: 'fail' });
      expect(f.detail).toMatch(/expired/);
    });
    it('a certificate not valid yet fails', async () => {
      const f = await tlsOf({ federation: { tls_cert_file: certFile, tls_key_file: keyFile } }, { now: Date.now() - 3 * 86_400_000 });
      expect(f).toMatchObject({ status: 'fail' });
      expect(f.detail).toMatch(/is not valid before/);
    });
    it('a configured certificate file that is missing or not PEM, or an unreadable key, fails', async () => {
      const missing = await tlsOf({ federation: { tls_cert_file: path.join(dir, 'nope.crt'), tls_key_file: keyFile } });
      expect(missing).toMatchObject({ status: 'fail' });
      expect(missing.detail).toMatch(/tls_cert_file .*nope\.crt does not exist/);
      const garbage = path.join(dir, 'garbage.crt');
      await writeFile(garbage, 'not a certificate\n');
      const notPem = await tlsOf({ federation: { tls_cert_file: garbage, tls_key_file: keyFile } });
      expect(notPem).toMatchObject({ status: 'fail' });
      expect(notPem.detail).toMatch(/is not a PEM certificate/);
      const noKey = await tlsOf({ federation: { tls_cert_file: certFile, tls_key_file: path.join(dir, 'nope.key') } });
      expect(noKey).toMatchObject({ status: 'fail' });
      expect(noKey.detail).toMatch(/cannot read the TLS key/);
    });
    it('a certificate for another name fails', async () => {
      const f = await tlsOf({ server_name: 'other.example.org', federation: { tls_cert_file: certFile, tls_key_file: keyFile } });
      expect(f).toMatchObject({ status: 'fail' });
      expect(f.detail).toMatch(/does not name other\.example\.org/);
    });
    it('a key that is not the certificate’s fails', async () => {
      const f = await tlsOf({ federation: { tls_cert_file: certFile, tls_key_file: otherKeyFile } });
      expect(f).toMatchObject({ status: 'fail' });
      expect(f.detail).toMatch(/is not the key/);
    });
  });

  it('a server name other servers cannot reach is named', async () => {
    expect(byCheck(await doctor(config({ server_name: 'localhost:8008' })), 'server_name')).toMatchObject({ status: 'warn' });
    expect(byCheck(await doctor(config({ server_name: '127.0.0.1:8448' })), 'server_name')).toMatchObject({ status: 'warn' });
    const f = byCheck(await doctor(config({ server_name: 'no-such-host.invalid' })), 'server_name');
    expect(f).toMatchObject({ status: 'fail' });
    expect(f.detail).toMatch(/does not resolve/);
  });
});

describe('parley doctor --peer: reachability checked from outside', () => {
  let fed: Federation;
  let hidden: number;
  const askVia = (from: FedServer, peer: string) => ({
    peer,
    ask: async () =>
      (
        await from.running.federation?.context.client.request({
          destination: peer,
          method: 'POST',
          path: '/federation/v1/reachability',
          body: {},
        })
      )?.body as { reachable: boolean; error?: string },
  });
  const reach = (findings: Finding[]) => findings.find((f) => f.check === 'reachability');

  beforeAll(async () => {
    hidden = await freePort();
    // hs1 listens where nobody looks for it (as behind a closed firewall port): the others'
    // map sends them to a port nothing answers on.
    fed = await startFederation(['hs1.test', 'hs2.test', 'hs3.test'], {
      overrides: (name) => (name === 'hs1.test' ? { federation: { port: hidden } } : {}),
    });
  });
  afterAll(async () => {
    await fed?.close();
  });

  it('a server the peer reaches passes; one it cannot reach fails, naming why', async () => {
    const hs2 = fed.byName('hs2.test');
    const hs3 = fed.byName('hs3.test');
    const ok = reach(await doctor(hs3.running.config, { askPeer: askVia(hs3, 'hs2.test') }));
    expect(ok).toMatchObject({ status: 'ok' });
    expect(ok?.detail).toMatch(/hs2\.test reached/);
    const hs1 = fed.byName('hs1.test');
    const bad = reach(await doctor(hs1.running.config, { askPeer: askVia(hs1, 'hs2.test') }));
    expect(bad).toMatchObject({ status: 'fail' });
    expect(bad?.detail).toMatch(/cannot reach|could not fetch/);
    // One check per asking server every 10 s: asking again at once is refused, not repeated.
    const again = reach(await doctor(hs3.running.config, { askPeer: askVia(hs3, 'hs2.test') }));
    expect(again).toMatchObject({ status: 'warn' });
    expect(again?.detail).toMatch(/429|every 10 s/);
    expect(hs2.isRunning()).toBe(true);
  });
});
