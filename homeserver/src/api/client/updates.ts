import { createReadStream, existsSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import Router from '@koa/router';
import { notFound } from '../../errors.js';
import type { AppContext, AppState } from '../../http/context.js';
import type { Services } from '../../services/index.js';

const METADATA_FILE = /^(?:\d{1,9}\.)?(?:root|targets|snapshot|timestamp)\.json$/;
const TARGET_PATH = /^[A-Za-z0-9._-]{1,128}(?:\/[A-Za-z0-9._-]{1,128}){0,7}$/;

/**
 * GET /updates/metadata/:file and GET /updates/targets/:path — the verified copy of the release
 * repository this server mirrors, to anyone (it is public and signed; clients verify it
 * themselves). 404 when this server does not mirror.
 */
export function updateRoutes(s: Services): Router<AppState> {
  const router = new Router<AppState>({ prefix: '/updates' });
  const serve = async (ctx: AppContext, file: string, type: string) => {
    if (!existsSync(file)) throw notFound('not in the mirrored release repository');
    const st = await stat(file);
    if (!st.isFile()) throw notFound('not in the mirrored release repository');
    ctx.set('Cache-Control', 'no-cache');
    ctx.type = type;
    ctx.length = st.size;
    ctx.body = createReadStream(file);
  };
  const mirror = () => {
    if (!s.updates?.enabled) throw notFound('this server does not mirror Parley releases');
    return s.updates.mirror;
  };

  router.get('/metadata/:file', async (ctx: AppContext) => {
    const name = String(ctx.params.file ?? '');
    if (!METADATA_FILE.test(name)) throw notFound('no such metadata file');
    await serve(ctx, path.join(mirror().metadataDir, name), 'application/json');
  });

  router.get('/targets/*path', async (ctx: AppContext) => {
    const raw = ctx.params.path as unknown;
    const rel = Array.isArray(raw) ? raw.join('/') : String(raw ?? '');
    if (!TARGET_PATH.test(rel) || rel.split('/').some((p) => p === '.' || p === '..')) throw notFound('no such target');
    await serve(ctx, path.join(mirror().targetsDir, rel), 'application/octet-stream');
  });
  return router;
}
