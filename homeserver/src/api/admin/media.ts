import Router from '@koa/router';
import { AdminQuarantineRequest } from '@parley/schemas';
import { badRequest } from '../../errors.js';
import type { AppContext, AppState } from '../../http/context.js';
import { readBody } from '../../http/middleware/body.js';
import { queryInt, queryString, userIdValue } from '../../http/params.js';
import type { Services } from '../../services/index.js';
import { actorOf, adminOnly, queryChoice } from './guard.js';

const MEDIA_ID = /^[A-Za-z0-9_-]{1,128}$/;

function mediaParam(ctx: AppContext): string {
  const v = String(ctx.params.mediaId ?? '');
  if (!MEDIA_ID.test(v)) throw badRequest('PARLEY_INVALID_PARAM', 'mediaId in the path is not a media ID', 'mediaId');
  return v;
}

/** Media: usage, list, quarantine (served to nobody) and delete. */
export function adminMediaRoutes(s: Services): Router<AppState> {
  const router = new Router<AppState>({ prefix: '/api/v1/admin/media' });
  const admin = adminOnly(s);
  const a = s.admin;

  // GET /api/v1/admin/media?uploader=&quarantined=true&order=newest|largest&limit=&offset=
  router.get('/', admin, async (ctx: AppContext) => {
    const uploaderRaw = queryString(ctx, 'uploader', 255);
    const uploader = uploaderRaw === undefined || uploaderRaw === '' ? undefined : userIdValue(uploaderRaw, 'uploader');
    const [usage, list] = await Promise.all([
      a.media.usage(),
      a.media.list({
        ...(uploader ? { uploader } : {}),
        quarantined: queryChoice(ctx, 'quarantined', ['true', 'false'] as const, 'false') === 'true',
        order: queryChoice(ctx, 'order', ['newest', 'largest'] as const, 'newest'),
        limit: queryInt(ctx, 'limit', 50, 1, 500),
        offset: queryInt(ctx, 'offset', 0, 0, 1_000_000),
      }),
    ]);
    ctx.body = { usage, ...list };
  });

  // PUT /api/v1/admin/media/:mediaId/quarantine
  router.put('/:mediaId/quarantine', admin, async (ctx: AppContext) => {
    const mediaId = mediaParam(ctx);
    const body = await readBody(ctx, AdminQuarantineRequest, s.config.http.max_json_body_bytes);
    await a.media.quarantine(mediaId, body.quarantined, actorOf(ctx).userId);
    await a.audit.record(actorOf(ctx), body.quarantined ? 'media.quarantine' : 'media.unquarantine', mediaId);
    ctx.body = {};
  });

  // DELETE /api/v1/admin/media/:mediaId
  router.delete('/:mediaId', admin, async (ctx: AppContext) => {
    const mediaId = mediaParam(ctx);
    await a.media.delete(mediaId);
    await a.audit.record(actorOf(ctx), 'media.delete', mediaId);
    ctx.body = {};
  });

  return router;
}
