import type { Next } from 'koa';
import { badRequest, forbidden } from '../../errors.js';
import { type AppContext, authOf } from '../../http/context.js';
import { requireAuth } from '../../http/middleware/auth.js';
import type { Actor } from '../../services/admin/audit.js';
import type { Services } from '../../services/index.js';

/** Authentication (401) then the admin flag (403), before any admin handler reads its input. */
export function adminOnly(s: Services) {
  const auth = requireAuth(s.sessions);
  return async (ctx: AppContext, next: Next): Promise<void> => {
    await auth(ctx, async () => {
      if (!authOf(ctx).isAdmin) throw forbidden('server administrators only');
      await next();
    });
  };
}

export function actorOf(ctx: AppContext): Actor {
  return { userId: authOf(ctx).userId, ip: ctx.ip || null };
}

/** A positive integer path parameter (report and policy IDs). */
export function idParam(ctx: AppContext, name: string): number {
  const v = String(ctx.params[name] ?? '');
  if (!/^\d{1,15}$/.test(v) || Number(v) < 1)
    throw badRequest('PARLEY_INVALID_PARAM', `${name} in the path must be a positive integer`, name);
  return Number(v);
}

/** One of a fixed set of values for a query parameter. */
export function queryChoice<T extends string>(ctx: AppContext, name: string, choices: readonly T[], def: T): T {
  const v = ctx.query[name];
  if (v === undefined) return def;
  if (typeof v !== 'string' || !(choices as readonly string[]).includes(v))
    throw badRequest('PARLEY_INVALID_PARAM', `query parameter ${name} must be one of ${choices.join(', ')}`, name);
  return v as T;
}
