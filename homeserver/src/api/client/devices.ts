import Router from '@koa/router';
import { check, DeviceId, DeviceUpdateRequest } from '@parley/schemas';
import { ParleyError } from '../../errors.js';
import type { AppContext, AppState } from '../../http/context.js';
import { authOf } from '../../http/context.js';
import { requireAuth } from '../../http/middleware/auth.js';
import { readBody } from '../../http/middleware/body.js';
import type { Services } from '../../services/index.js';

function deviceIdParam(ctx: AppContext): string {
  const result = check(DeviceId, ctx.params.deviceId);
  if (!result.ok)
    throw new ParleyError(400, 'PARLEY_INVALID_PARAM', 'deviceId in the path is not a valid device ID', { field: 'deviceId' });
  return result.value;
}

export function deviceRoutes(s: Services): Router<AppState> {
  const router = new Router<AppState>({ prefix: '/api/v1/devices' });
  const auth = requireAuth(s.sessions);

  // GET /api/v1/devices
  router.get('/', auth, async (ctx: AppContext) => {
    ctx.body = { devices: await s.devices.list(authOf(ctx)) };
  });

  // PUT /api/v1/devices/:deviceId
  router.put('/:deviceId', auth, async (ctx: AppContext) => {
    const deviceId = deviceIdParam(ctx);
    const body = await readBody(ctx, DeviceUpdateRequest, s.config.http.max_json_body_bytes);
    ctx.body = await s.devices.rename(authOf(ctx), deviceId, body.display_name);
  });

  // DELETE /api/v1/devices/:deviceId
  router.delete('/:deviceId', auth, async (ctx: AppContext) => {
    await s.devices.delete(authOf(ctx), deviceIdParam(ctx));
    ctx.body = {};
  });

  return router;
}
