import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { ConfigError, loadConfig } from '../src/config.js';

describe('configuration', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'parley-config-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  const file = async (name: string, text: string) => {
    const p = path.join(dir, name);
    await writeFile(p, text);
    return p;
  };

  it('parley.example.yaml names every key, with the default values', async () => {
    const example = fileURLToPath(new URL('../parley.example.yaml', import.meta.url));
    const text = await readFile(example, 'utf8');
    const defaults = loadConfig({ env: {}, overrides: { server_name: 'localhost:8008' } });
    const keys = (o: unknown, prefix = ''): string[] =>
      o && typeof o === 'object' && !Array.isArray(o) && Object.keys(o).length > 0
        ? Object.entries(o).flatMap(([k, v]) => keys(v, `${prefix}${k}.`))
        : [prefix.slice(0, -1)];
    const documented = YAML.parse(text) as Record<string, unknown>;
    expect(keys(documented).sort()).toEqual(keys(defaults).sort());
    const loaded = loadConfig({ env: {}, file: example });
    expect({ ...loaded, data_dir: defaults.data_dir }).toEqual(defaults);
  });

  it('has working defaults with no file and no environment', () => {
    const config = loadConfig({ env: {} });
    expect(config.http.port).toBe(8008);
    expect(config.server_name).toBe('localhost:8008');
    expect(config.database.url).toBeNull();
    expect(config.redis.url).toBeNull();
    expect(config.registration.mode).toBe('open');
  });

  it('reads the file named by PARLEY_CONFIG; environment variables override it', async () => {
    const p = await file(
      'a.yaml',
      'server_name: chat.example.org\nhttp:\n  port: 9000\nregistration:\n  mode: token\ndatabase:\n  url: postgres://file/db\n',
    );
    const fromFile = loadConfig({ env: { PARLEY_CONFIG: p } });
    expect(fromFile).toMatchObject({ server_name: 'chat.example.org', http: { port: 9000 }, registration: { mode: 'token' } });
    const overridden = loadConfig({
      env: {
        PARLEY_CONFIG: p,
        PARLEY_HTTP_PORT: '9100',
        DATABASE_URL: 'postgres://env/db',
        REDIS_URL: 'redis://127.0.0.1:6379',
        PARLEY_SERVER_NAME: 'other.example.org',
        PARLEY_DATA_DIR: 'rel/data',
      },
    });
    expect(overridden).toMatchObject({
      server_name: 'other.example.org',
      http: { port: 9100 },
      database: { url: 'postgres://env/db' },
      redis: { url: 'redis://127.0.0.1:6379' },
    });
    expect(path.isAbsolute(overridden.data_dir)).toBe(true);
    // Keys not mentioned keep their defaults.
    expect(overridden.auth.access_token_ttl_ms).toBe(15 * 60_000);
  });

  it.each([
    ['unknown key', 'surprise: 1\n', /surprise is not a known field/],
    ['wrong type', 'http:\n  port: "eighty"\n', /http\.port/],
    ['out of range', 'http:\n  port: 70000\n', /http\.port/],
    ['bad mode', 'registration:\n  mode: maybe\n', /registration\.mode/],
    ['bad server name', 'server_name: "not a name!"\n', /server_name/],
    ['not a mapping', '- a\n- b\n', /must hold a mapping/],
    ['invalid YAML', 'http: [unclosed\n', /not valid YAML/],
  ])('refuses a file with %s, naming the key', async (_name, text, message) => {
    const p = await file(`bad-${Math.random()}.yaml`, text);
    expect(() => loadConfig({ env: { PARLEY_CONFIG: p } })).toThrow(message);
    expect(() => loadConfig({ env: { PARLEY_CONFIG: p } })).toThrow(ConfigError);
  });

  it('refuses bad environment values and a missing file', () => {
    expect(() => loadConfig({ env: { PARLEY_HTTP_PORT: '80a' } })).toThrow(/PARLEY_HTTP_PORT must be an integer/);
    expect(() => loadConfig({ env: { PARLEY_REGISTRATION_MODE: 'sometimes' } })).toThrow(/registration\.mode/);
    expect(() => loadConfig({ env: { PARLEY_CONFIG: path.join(dir, 'missing.yaml') } })).toThrow(/cannot read config file/);
  });
});
