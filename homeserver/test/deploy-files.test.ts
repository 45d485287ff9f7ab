import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { loadConfig } from '../src/config.js';

/**
 * deploy/ checked statically: no Docker engine runs here, so the image and compose stack are
 * not started by the tests (the nginx set-up is, in scale-out.slow.test.ts). What can be
 * checked is checked: the files parse, everything they reference exists, and the ports and
 * paths agree with each other and with Parley's configuration.
 */
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const read = (rel: string) => readFileSync(path.join(ROOT, rel), 'utf8');

describe('deploy/ files', () => {
  const production = loadConfig({ file: path.join(ROOT, 'deploy/parley.production.yaml'), env: {} });

  it('the production configuration is valid and sets what a proxied server needs', () => {
    expect(production.http.trust_proxy).toBe(true);
    expect(production.http.port).toBe(8008);
    expect(production.federation.port).toBe(8448);
    expect(production.database.url).toBeNull(); // secrets come from the environment
  });

  it('compose.yaml parses and its services, ports, volumes and files agree', () => {
    const compose = parseYaml(read('deploy/compose.yaml')) as {
      services: Record<
        string,
        {
          build?: { context: string; dockerfile: string };
          ports?: string[];
          expose?: string[];
          volumes?: string[];
          command?: string[];
          environment?: Record<string, string>;
          depends_on?: unknown;
        }
      >;
      volumes: Record<string, unknown>;
    };
    expect(Object.keys(compose.services).sort()).toEqual(['caddy', 'homeserver', 'postgres', 'redis']);
    const hs = compose.services.homeserver;
    expect(hs?.build && existsSync(path.join(ROOT, 'deploy', hs.build.context, hs.build.dockerfile))).toBe(true);
    expect(hs?.ports).toContain(`${production.federation.port}:${production.federation.port}`);
    expect(hs?.expose).toContain(String(production.http.port));
    expect(hs?.environment?.DATABASE_URL).toMatch(/@postgres:5432\//);
    expect(hs?.environment?.REDIS_URL).toBe('redis://redis:6379');
    expect(compose.services.redis?.command?.join(' ')).toMatch(/--maxmemory-policy noeviction/);
    for (const svc of Object.values(compose.services)) {
      for (const v of svc.volumes ?? []) {
        const [source] = v.split(':');
        if (source?.startsWith('.')) expect(existsSync(path.join(ROOT, 'deploy', source)), v).toBe(true);
        else expect(compose.volumes, v).toHaveProperty(source as string);
      }
    }
    // Caddy in compose proxies to the homeserver's client port.
    expect(read('deploy/caddy/Caddyfile.compose')).toContain(`reverse_proxy homeserver:${production.http.port}`);
  });

  it('the Dockerfile copies files that exist and runs the server as a non-root user', () => {
    const docker = read('deploy/Dockerfile');
    for (const m of docker.matchAll(/^COPY (?!--from)(?:--\S+ )*(\S+) (\S+)$/gm)) {
      const source = m[1] as string;
      if (source !== '.') expect(existsSync(path.join(ROOT, source)), source).toBe(true);
    }
    expect(docker).toMatch(/^USER parley$/m);
    // The same node flags as `pnpm start` (docs/operator-guide.md): a 4 MiB young generation.
    expect(docker).toMatch(
      /^CMD \["node", "--max-semi-space-size=4", "--max-old-space-size=1024", "--v8-pool-size=2", "homeserver\/dist\/parley\.mjs", "serve"\]$/m,
    );
    expect(docker).toMatch(/^ENV MALLOC_ARENA_MAX=2$/m);
    // The image builds the bundle it runs, with the script `pnpm build` runs.
    expect(docker).toContain('pnpm@10 build');
    const rootPkg = JSON.parse(read('package.json')) as { scripts: Record<string, string> };
    expect(rootPkg.scripts.build).toContain('scripts/build-server.mjs');
    expect(existsSync(path.join(ROOT, 'scripts/build-server.mjs'))).toBe(true);
    expect(docker).toContain(`EXPOSE ${production.http.port} ${production.federation.port}`);
    // Its build steps are the operator guide's install steps, word for word.
    const guideSteps = /^npx -y pnpm@10 install --frozen-lockfile && npx -y pnpm@10 build/m.exec(read('docs/operator-guide.md'));
    expect(guideSteps).not.toBeNull();
    const dockerSteps = /^RUN (npx -y pnpm@10 install[^\n]*)\\\n\s*(&& npx -y pnpm@10 build)$/m.exec(docker);
    expect(dockerSteps && `${dockerSteps[1]?.trim()} ${dockerSteps[2]}`).toBe(guideSteps?.[0]);
  });

  it('the systemd unit is hardened and starts the server from the install path', () => {
    const unit = read('deploy/systemd/parley.service');
    for (const key of [
      'NoNewPrivileges=yes',
      'ProtectSystem=strict',
      'ProtectHome=yes',
      'PrivateTmp=yes',
      'CapabilityBoundingSet=',
      'User=parley',
    ]) {
      expect(unit).toContain(key);
    }
    expect(unit).toMatch(
      /^ExecStart=\/usr\/bin\/node --max-semi-space-size=4 --max-old-space-size=1024 --v8-pool-size=2 \/opt\/parley\/homeserver\/dist\/parley\.mjs serve$/m,
    );
    expect(unit).toMatch(/^Environment=MALLOC_ARENA_MAX=2$/m);
    expect(unit).toMatch(/^ReadWritePaths=\/var\/lib\/parley$/m);
  });

  it('nginx and Caddy point at the client port, upgrade the stream and pass federation through', () => {
    const site = read('deploy/nginx/parley.conf');
    expect(site).toContain(`server 127.0.0.1:${production.http.port}`);
    expect(site).toMatch(/location = \/api\/v1\/stream \{[^}]*proxy_set_header Upgrade \$http_upgrade;/);
    expect(site).toMatch(/client_max_body_size (\d+)m;/);
    const bodyMb = Number(/client_max_body_size (\d+)m;/.exec(site)?.[1]);
    expect(bodyMb * 1024 * 1024).toBeGreaterThanOrEqual(production.media.max_upload_bytes);
    const fed = read('deploy/nginx/parley-federation.conf');
    expect(fed).toContain(`listen ${production.federation.port};`);
    expect(fed).toMatch(/^stream \{/m);
    const caddy = read('deploy/caddy/Caddyfile');
    expect(caddy).toContain(`127.0.0.1:${production.http.port}`);
    expect(caddy).toContain(`:${production.federation.port}"}`);
    // Caddy leaves a dead process out by active health checks only: its passive ones
    // (fail_duration) also marked the surviving process down after a kill -9, and every PUT
    // and POST got 503 for seconds (scale-out.slow.test.ts caught it).
    expect(caddy).toMatch(/^\s*health_uri \/health$/m);
    expect(caddy).not.toMatch(/^\s*fail_duration/m);
  });
});
