import type { ParameterizedContext } from 'koa';
import type { Logger } from '../logger.js';
import type { AuthContext } from '../services/sessions.js';

export interface AppState {
  requestId: string;
  log: Logger;
  auth?: AuthContext;
}

export type AppContext = ParameterizedContext<AppState>;

/** The caller, for handlers behind requireAuth. */
export function authOf(ctx: AppContext): AuthContext {
  const auth = ctx.state.auth;
  if (!auth) throw new Error('handler mounted without requireAuth');
  return auth;
}
