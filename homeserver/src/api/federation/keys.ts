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
  router.post('/keys/query', async (ctx: AppContext) => {
    const body = await readBody(ctx, KeyQueryRequest, 64 * 1024);
    const out = [];
    for (const server of Object.keys(body.server_keys)) {
      if (server === fed.serverName) {
        out.push(notarize(fed.keyDocument(), fed.serverName, identity));
        continue;
      }
      const doc = await fed.keyStore.getDocument(server);
      if (doc) out.push(notarize(doc, fed.serverName, identity));
    }
    ctx.body = { server_keys: out };
  });

  return router;
}
