import type { Next } from 'koa';
import { unauthorized } from '../../errors.js';
import type { SessionService } from '../../services/sessions.js';
import type { AppContext } from '../context.js';

/** Authentication happens here, once, before any handler that needs a caller. */
export function requireAuth(sessions: SessionService) {
  return async (ctx: AppContext, next: Next): Promise<void> => {
    const header = ctx.get('authorization');
    const match = /^Bearer ([\x21-\x7e]{1,512})$/.exec(header);
    if (!match) {
      throw unauthorized(
        'PARLEY_MISSING_TOKEN',
        header ? 'Authorization header must be "Bearer <access_token>"' : 'an access token is required',
      );
    }
    ctx.state.auth = await sessions.authenticate(match[1] as string, ctx.ip);
    ctx.state.log = ctx.state.log.child({ user_id: ctx.state.auth.userId, device_id: ctx.state.auth.deviceId });
    await next();
  };
}
