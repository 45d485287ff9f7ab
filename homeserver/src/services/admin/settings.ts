import { readFileSync } from 'node:fs';
import type { SettingEntry } from '@parley/schemas';
import { parse as parseYaml } from 'yaml';
import { type Config, configFileOf, defaultConfig, envOverrides } from '../../config.js';

// Keys whose values are never shown: connection strings carry passwords, and any key named
// like a secret (keys added later included) is hidden too.
const SECRET_KEYS = new Set(['database.url', 'redis.url']);
const SECRET_NAME = /password|secret|private_key|credential|api_key|token(?!_ttl)/;

function leaves(value: unknown, prefix: string, out: Map<string, unknown>): void {
  if (
    value !== null &&
    typeof value === 'object' &&
    !Array.isArray(value) &&
    prefix.split('.').length < 3 &&
    !prefix.endsWith('static_servers')
  ) {
    for (const [k, v] of Object.entries(value)) leaves(v, prefix ? `${prefix}.${k}` : k, out);
    return;
  }
  if (value !== undefined) out.set(prefix, value);
}

function has(obj: unknown, key: string): boolean {
  let cur: unknown = obj;
  for (const part of key.split('.')) {
    if (cur === null || typeof cur !== 'object' || !(part in cur)) return false;
    cur = (cur as Record<string, unknown>)[part];
  }
  return cur !== undefined;
}

/**
 * The running configuration, key by key, with where each value came from: the environment,
 * the config file, set by the embedding program (`override`), or the default. Secrets show
 * only whether they are set.
 */
export function describeSettings(config: Config, env: NodeJS.ProcessEnv = process.env): { file: string | null; settings: SettingEntry[] } {
  const file = configFileOf(config) ?? null;
  let fromFile: unknown = {};
  if (file) {
    try {
      fromFile = parseYaml(readFileSync(file, 'utf8')) ?? {};
    } catch {
      fromFile = {};
    }
  }
  const fromEnv = envOverrides(env);
  const defaults = new Map<string, unknown>();
  leaves(defaultConfig(), '', defaults);
  const current = new Map<string, unknown>();
  leaves(config, '', current);
  const settings: SettingEntry[] = [];
  for (const [key, value] of current) {
    const secret = SECRET_KEYS.has(key) || SECRET_NAME.test(key.split('.').at(-1) ?? '');
    let source: SettingEntry['source'] = 'default';
    if (has(fromEnv, key)) source = 'environment';
    else if (has(fromFile, key)) source = 'file';
    else if (JSON.stringify(defaults.get(key)) !== JSON.stringify(value) && key !== 'server_name' && key !== 'data_dir')
      source = 'override';
    settings.push({ key, value: secret ? (value ? '(set; hidden)' : null) : value, source, secret });
  }
  return { file, settings: settings.sort((a, b) => a.key.localeCompare(b.key)) };
}
