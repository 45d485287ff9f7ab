import { randomUUID } from 'node:crypto';
import type { Next } from 'koa';
import type { Logger } from '../../logger.js';
import type { Metrics } from '../../metrics.js';
import type { AppContext } from '../context.js';

const CLIENT_REQUEST_ID = /^[A-Za-z0-9._-]{8,64}$/;

/**
 * Gives each request an ID (the caller's X-Request-Id when sane), a child logger, an
 * access-log line and metrics labelled by route template — never by raw path or query,
 * which could carry tokens and would explode label cardinality.
 */
export function requestContext(log: Logger, metrics: Metrics) {
  return async (ctx: AppContext, next: Next): Promise<void> => {
    const incoming = ctx.get('x-request-id');
    const requestId = CLIENT_REQUEST_ID.test(incoming) ? incoming : randomUUID();
    ctx.state.requestId = requestId;
    ctx.state.log = log.child({ req_id: requestId });
    ctx.set('X-Request-Id', requestId);
    const started = process.hrtime.bigint();
    try {
      await next();
    } finally {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const route = (ctx as { _matchedRoute?: string })._matchedRoute ?? 'unmatched';
      metrics.httpRequests.inc({ method: ctx.method, route, status: String(ctx.status) });
      metrics.httpDuration.observe({ method: ctx.method, route }, seconds);
      // Mailbox paths carry queue IDs: logged, they would let an operator pair a send ID with
      // its receive ID by timing and address (docs/protocol.md), so only the template is kept.
      const path = ctx.path.startsWith('/mailbox/') ? route : ctx.path;
      ctx.state.log.info({ method: ctx.method, route, path, status: ctx.status, ms: Math.round(seconds * 1000) }, 'request');
    }
  };
}
