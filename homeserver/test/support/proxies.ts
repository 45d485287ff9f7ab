import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { openSync } from 'node:fs';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * deploy/'s nginx and Caddy configurations run for real, with this machine's ports and a test
 * CA's certificate put in: used by scale-out.slow.test.ts and by the bench's scale-out
 * scenario (bench/src/scale-out.ts), so both measure the files an operator copies.
 */
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const DEPLOY = path.join(ROOT, 'deploy');

/** Installs Debian's nginx (with its stream module) and Caddy when missing (scripts/ensure-proxies.sh). */
export function ensureProxies(): void {
  const ensure = spawnSync('bash', [path.join(ROOT, 'scripts/ensure-proxies.sh')], { stdio: 'inherit' });
  if (ensure.status !== 0) throw new Error('nginx and Caddy are not installed and could not be installed');
}

export interface TestCa {
  /** The CA certificate (PEM) clients trust. */
  ca: string;
  /** Certificate and key files for 127.0.0.1/localhost, signed by the CA. */
  certFile: string;
  keyFile: string;
}

/** A test CA and a certificate for 127.0.0.1 and localhost signed by it, in `dir`. */
export async function makeTestCa(dir: string): Promise<TestCa> {
  const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
  ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=Parley test CA');
  ssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'site.key', '-out', 'site.csr', '-subj', '/CN=localhost');
  await writeFile(path.join(dir, 'san.ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\n');
  ssl(
    'x509',
    '-req',
    '-in',
    'site.csr',
    '-CA',
    'ca.crt',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-out',
    'site.crt',
    '-days',
    '2',
    '-extfile',
    'san.ext',
  );
  return {
    ca: await readFile(path.join(dir, 'ca.crt'), 'utf8'),
    certFile: path.join(dir, 'site.crt'),
    keyFile: path.join(dir, 'site.key'),
  };
}

export interface ProxySetup {
  /** Where the proxy keeps its generated config, temp files and logs. */
  dir: string;
  tls: TestCa;
  /** The proxy's HTTPS and HTTP (redirect) ports. */
  https: number;
  http: number;
  /** The two `parley serve` processes' HTTP ports (deploy/ lists 8008 and 8009). */
  upstreams: [number, number];
  /** nginx only: the federation pass-through port and the processes' federation ports. */
  federation?: { port: number; upstreams: [number, number] };
}

/** `text` with each [from, to] replaced once; throws naming a line deploy/ no longer has. */
function put(file: string, text: string, replacements: Array<[string | RegExp, string]>): string {
  let out = text;
  for (const [from, to] of replacements) {
    const found = typeof from === 'string' ? out.includes(from) : from.test(out);
    if (!found) throw new Error(`${file} no longer contains ${String(from)}: update homeserver/test/support/proxies.ts`);
    out = out.replace(from, to);
  }
  return out;
}

/** deploy/nginx/parley.conf and parley-federation.conf, run in the foreground. */
export async function startNginx(s: ProxySetup): Promise<ChildProcess> {
  const prefix = path.join(s.dir, 'nginx');
  const tmp = path.join(prefix, 'tmp');
  await mkdir(tmp, { recursive: true });
  await chmod(tmp, 0o777);
  const site = put(
    'deploy/nginx/parley.conf',
    (await readFile(path.join(DEPLOY, 'nginx/parley.conf'), 'utf8')).replace(/^\s*listen \[::\]:\d+( ssl)?;\n/gm, ''),
    [
      ['listen 80;', `listen 127.0.0.1:${s.http};`],
      ['listen 443 ssl;', `listen 127.0.0.1:${s.https} ssl;`],
      ['server 127.0.0.1:8008', `server 127.0.0.1:${s.upstreams[0]}`],
      ['server 127.0.0.1:8009', `server 127.0.0.1:${s.upstreams[1]}`],
      ['/etc/letsencrypt/live/chat.example.org/fullchain.pem', s.tls.certFile],
      ['/etc/letsencrypt/live/chat.example.org/privkey.pem', s.tls.keyFile],
    ],
  );
  await writeFile(path.join(prefix, 'parley.conf'), site);
  if (s.federation) {
    const fed = put(
      'deploy/nginx/parley-federation.conf',
      (await readFile(path.join(DEPLOY, 'nginx/parley-federation.conf'), 'utf8')).replace(/^\s*listen \[::\]:\d+;\n/gm, ''),
      [
        ['server 127.0.0.1:8448', `server 127.0.0.1:${s.federation.upstreams[0]}`],
        ['server 127.0.0.1:8449', `server 127.0.0.1:${s.federation.upstreams[1]}`],
        ['listen 8448;', `listen 127.0.0.1:${s.federation.port};`],
      ],
    );
    await writeFile(path.join(prefix, 'parley-federation.conf'), fed);
  }
  await writeFile(
    path.join(prefix, 'nginx.conf'),
    [
      'load_module /usr/lib/nginx/modules/ngx_stream_module.so;',
      'worker_processes 1;',
      `pid ${prefix}/nginx.pid;`,
      `error_log ${prefix}/error.log warn;`,
      'events { worker_connections 1024; }',
      'http {',
      '  access_log off;',
      ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `  ${t}_temp_path ${tmp}/${t};`),
      `  include ${prefix}/parley.conf;`,
      '}',
      ...(s.federation ? [`include ${prefix}/parley-federation.conf;`] : []),
      '',
    ].join('\n'),
  );
  return spawn(
    '/usr/sbin/nginx',
    ['-c', path.join(prefix, 'nginx.conf'), '-p', prefix, '-e', path.join(prefix, 'error.log'), '-g', 'daemon off;'],
    { stdio: 'ignore' },
  );
}

/** deploy/caddy/Caddyfile with the test CA's certificate in place of automatic HTTPS. */
export async function startCaddy(s: ProxySetup): Promise<ChildProcess> {
  const site = put('deploy/caddy/Caddyfile', await readFile(path.join(DEPLOY, 'caddy/Caddyfile'), 'utf8'), [
    ['chat.example.org {', `https://127.0.0.1:${s.https} {\n\ttls ${s.tls.certFile} ${s.tls.keyFile}`],
    ['reverse_proxy 127.0.0.1:8008 127.0.0.1:8009 {', `reverse_proxy 127.0.0.1:${s.upstreams[0]} 127.0.0.1:${s.upstreams[1]} {`],
  ]);
  const globals = `{\n\tadmin off\n\thttp_port ${s.http}\n\thttps_port ${s.https}\n\tstorage file_system ${path.join(s.dir, 'caddy-data')}\n}\n\n`;
  await writeFile(path.join(s.dir, 'Caddyfile'), globals + site);
  // Caddy logs proxy errors (an upstream marked down, a failed dial) to stderr: kept in caddy.log.
  const log = openSync(path.join(s.dir, 'caddy.log'), 'a');
  return spawn('/usr/bin/caddy', ['run', '--config', path.join(s.dir, 'Caddyfile'), '--adapter', 'caddyfile'], {
    stdio: ['ignore', log, log],
    env: { ...process.env, HOME: s.dir, XDG_DATA_HOME: s.dir, XDG_CONFIG_HOME: s.dir },
  });
}
