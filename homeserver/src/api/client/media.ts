import Router from '@koa/router';
import { isMediaId, isServerName } from '@parley/schemas';
import { badRequest, ParleyError } from '../../errors.js';
import type { AppContext, AppState } from '../../http/context.js';
import { authOf } from '../../http/context.js';
import { requireAuth } from '../../http/middleware/auth.js';
import type { MediaRow } from '../../repositories/media.js';
import type { Services } from '../../services/index.js';
import {
  contentDisposition,
  etagMatches,
  FILENAME_MAX_CHARS,
  isInlineSafe,
  parseRange,
  sanitizeFilename,
} from '../../services/media-policy.js';

// Applied to every download: even an inline image is opened in a document that can run
// nothing and load nothing.
const MEDIA_CSP = "sandbox; default-src 'none'";

function serverNameParam(ctx: AppContext): string {
  const raw = ctx.params.serverName;
  if (!isServerName(raw)) throw badRequest('PARLEY_INVALID_PARAM', 'serverName in the path is not a valid server name', 'serverName');
  return raw;
}

export function mediaIdParam(ctx: AppContext): string {
  const raw = ctx.params.mediaId;
  if (!isMediaId(raw)) throw badRequest('PARLEY_INVALID_PARAM', 'mediaId in the path is not a valid media ID', 'mediaId');
  return raw;
}

function filenameQuery(ctx: AppContext): string | null {
  const raw = ctx.query.filename;
  if (raw === undefined) return null;
  if (typeof raw !== 'string') throw badRequest('PARLEY_INVALID_PARAM', 'filename may be given once', 'filename');
  const name = sanitizeFilename(raw);
  if (name !== null && [...name].length > FILENAME_MAX_CHARS) {
    throw badRequest('PARLEY_INVALID_PARAM', `filename is longer than ${FILENAME_MAX_CHARS} characters`, 'filename');
  }
  return name;
}

function declaredLength(ctx: AppContext): number | null {
  const header = ctx.get('content-length');
  return /^\d+$/.test(header) ? Number(header) : null;
}

/** The safety headers of every media download (client API and federation alike). */
export function setMediaHeaders(ctx: AppContext, row: MediaRow): void {
  const inline = isInlineSafe(row.content_type);
  ctx.type = inline ? row.content_type : 'application/octet-stream';
  ctx.set('Content-Disposition', contentDisposition(inline ? 'inline' : 'attachment', row.filename));
  ctx.set('Content-Security-Policy', MEDIA_CSP);
  ctx.set('X-Content-Type-Options', 'nosniff');
  // Stored media never changes; only the caller's own cache may keep it.
  ctx.set('Cache-Control', 'private, max-age=86400, immutable');
  ctx.set('Accept-Ranges', 'bytes');
  ctx.set('ETag', `"${row.sha256}"`);
}

export function mediaRoutes(s: Services): Router<AppState> {
  const router = new Router<AppState>({ prefix: '/api/v1/media' });
  const auth = requireAuth(s.sessions);

  // POST /api/v1/media
  // The body is the file itself, streamed to disk: never run the JSON body reader here.
  router.post('/', auth, async (ctx: AppContext) => {
    const encoding = ctx.get('content-encoding').trim().toLowerCase();
    if (encoding !== '' && encoding !== 'identity') {
      throw new ParleyError(415, 'PARLEY_UNSUPPORTED_MEDIA_TYPE', 'upload the file without Content-Encoding');
    }
    const filename = filenameQuery(ctx);
    const clientContentType = ctx.get('content-type').slice(0, 255) || null;
    try {
      ctx.body = await s.media.upload(authOf(ctx), ctx.req, { declaredBytes: declaredLength(ctx), clientContentType, filename });
      ctx.status = 201;
    } catch (err) {
      // Refused before the whole body arrived: close rather than drain the rest of it.
      if (!ctx.req.complete) ctx.set('Connection', 'close');
      throw err;
    }
  });

  // GET /api/v1/media/:serverName/:mediaId/info
  router.get('/:serverName/:mediaId/info', auth, async (ctx: AppContext) => {
    ctx.body = s.media.info(await s.media.get(serverNameParam(ctx), mediaIdParam(ctx), authOf(ctx).userId));
  });

  // GET /api/v1/media/:serverName/:mediaId
  router.get('/:serverName/:mediaId', auth, async (ctx: AppContext) => {
    const row = await s.media.get(serverNameParam(ctx), mediaIdParam(ctx), authOf(ctx).userId);
    const etag = `"${row.sha256}"`;
    if (etagMatches(ctx.get('if-none-match'), etag)) {
      setMediaHeaders(ctx, row);
      ctx.status = 304;
      return;
    }
    const ifRange = ctx.get('if-range');
    const range = ifRange && ifRange !== etag ? { kind: 'full' as const } : parseRange(ctx.get('range'), row.size);
    if (range.kind === 'unsatisfiable') {
      ctx.set('Content-Range', `bytes */${row.size}`);
      throw new ParleyError(416, 'PARLEY_INVALID_PARAM', `Range is outside the file's ${row.size} bytes`, { field: 'Range' });
    }
    const span = range.kind === 'partial' ? { start: range.start, end: range.end } : undefined;
    // Everything that can fail happens before the headers below are set, so an error
    // answer never goes out labelled as the file.
    if (ctx.method === 'HEAD') await s.media.ensureStored(row);
    else ctx.body = await s.media.open(row, span);
    setMediaHeaders(ctx, row);
    ctx.status = span ? 206 : 200;
    if (span) ctx.set('Content-Range', `bytes ${span.start}-${span.end}/${row.size}`);
    ctx.length = span ? span.end - span.start + 1 : row.size;
  });

  return router;
}
