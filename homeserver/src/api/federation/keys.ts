import Router from '@koa/router';
import { notarize } from '@parley/federation/keys';
import { KeyQueryRequest } from '@parley/schemas';
import type { FederationContext } from '../../federation/setup.js';
import type { AppContext, AppState } from '../../http/context.js';
import { readBody } from '../../http/middleware/body.js';
import type { SigningIdentity } from '../../services/room-log.js';

export function keyRoutes(fed: FederationContext, identity: SigningIdentity): Router<AppState> {
  const router = new Router<AppState>({ prefix: '/federation/v1' });

  // GET /federation/v1/keys — our self-signed key document (no request signature needed).
  router.get('/keys', (ctx: AppContext) => {
    ctx.set('Cache-Control', 'public, max-age=300');
    ctx.body = fed.keyDocument();
  });

  // POST /federation/v1/keys/query — notary: what we fetched and verified, countersigned.
  // Unauthenticated, and each name may make us dial out: the fetches are charged to the
  // caller's address (federation.remote_key_fetch), run in parallel under the key store's
  // concurrency cap, and a name we may not fetch now is simply left out of the answer.
  router.post('/keys/query', async (ctx: AppContext) => {
    const body = await readBody(ctx, KeyQueryRequest, 64 * 1024);
    const requester = ctx.ip || 'unknown';
    const docs = await Promise.all(
      Object.entries(body.server_keys).map(async ([server, criteria]) => {
        if (server === fed.serverName) return fed.keyDocument();
        const minimumValidUntilTs = Math.max(0, ...Object.values(criteria).map((c) => c.minimum_valid_until_ts ?? 0));
        return fed.keyStore.getDocument(server, { minimumValidUntilTs, requester });
      }),
    );
    ctx.body = { server_keys: docs.flatMap((doc) => (doc ? [notarize(doc, fed.serverName, identity)] : [])) };
  });

  return router;
}
