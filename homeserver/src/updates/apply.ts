import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { extract } from 'tar';
import type { Config } from '../config.js';
import { fetchVerifiedTarget } from './mirror.js';

export const SERVER_TARGET = 'server/parley-server.tgz';

/**
 * `parley update apply`: the only way a server bundle is installed. It is fetched from the
 * configured upstreams (and this server's own mirror) through tuf-js — every mirror may be
 * hostile — verified against the signed hash again, and only then unpacked into
 * data_dir/releases/<sha256>/. The running server is not touched: the operator points the
 * service at the new directory and restarts it (the command prints how).
 */
export async function applyServerUpdate(
  config: Config,
  options: { target?: string; mirrors?: string[] } = {},
): Promise<{ dir: string; mirror: string; failures: Array<{ source: string; error: string }> }> {
  const u = config.updates;
  if (!u.trusted_root) throw new Error('updates.trusted_root is not set: there is no root to verify a release with');
  const local = `http://127.0.0.1:${config.http.port}/updates`;
  const mirrors = options.mirrors ?? [...(u.mirror ? [local] : []), ...u.upstreams];
  if (mirrors.length === 0) throw new Error('no mirror to fetch from: set updates.upstreams');
  const target = options.target ?? SERVER_TARGET;
  const base = path.join(config.data_dir, 'releases');
  const download = path.join(base, `.download-${process.pid}`);
  await mkdir(base, { recursive: true });
  const got = await fetchVerifiedTarget({
    metadataDir: path.join(base, 'metadata'),
    trustedRoot: await readFile(u.trusted_root),
    mirrors,
    target,
    into: download,
    limits: {
      maxMetadataBytes: u.max_metadata_bytes,
      maxTargetBytes: u.max_target_bytes,
      maxTargets: u.max_targets,
      fetchTimeoutMs: 60_000,
    },
  });
  const { createHash } = await import('node:crypto');
  const sha256 = createHash('sha256')
    .update(await readFile(got.file))
    .digest('hex');
  const dir = path.join(base, sha256.slice(0, 32));
  if (!existsSync(dir)) {
    const tmp = `${dir}.unpacking`;
    await rm(tmp, { recursive: true, force: true });
    await mkdir(tmp, { recursive: true });
    let bytes = 0;
    try {
      await extract({
        file: got.file,
        cwd: tmp,
        strip: 1,
        strict: true,
        filter: (_p, entry) => {
          const e = entry as { type?: string; size?: number };
          if (e.type !== 'File' && e.type !== 'Directory') return false;
          bytes += e.size ?? 0;
          if (bytes > u.max_target_bytes * 4) throw new Error('the bundle unpacks to more than four times its cap');
          return true;
        },
      });
    } catch (err) {
      await rm(tmp, { recursive: true, force: true });
      throw new Error(`${target} is not a server bundle (a gzipped tar): ${(err as Error).message}`);
    }
    await rename(tmp, dir);
  }
  await rm(got.file, { force: true });
  return { dir, mirror: got.mirror, failures: got.failures };
}
