import Router from '@koa/router';
import { check, DeviceKeysQueryRequest, KeyClaimRequest, MAX_CLAIM_DEVICES, parseUserId } from '@parley/schemas';
import { badRequest } from '../../errors.js';
import type { FederationContext } from '../../federation/setup.js';
import type { AppContext, AppState } from '../../http/context.js';
import { fedState, requireServer } from '../../http/middleware/federation-auth.js';
import type { DeviceListService } from '../../services/keys/device-lists.js';
import type { KeyPackageService } from '../../services/keys/key-packages.js';
import { enforce, type RateLimiter } from '../../services/rate-limit.js';

// Per asking server: its users' claims together (each uses up our users' one-time packages).
const CLAIM_RULE = { burst: 300, per_minute: 120 };

function bodyOf<T>(ctx: AppContext, schema: Parameters<typeof check>[0]): T {
  const parsed = check(schema, fedState(ctx).body);
  if (!parsed.ok) throw badRequest(parsed.code, parsed.message, parsed.field);
  return parsed.value as T;
}

function onlyOurs(users: Iterable<string>, serverName: string): void {
  for (const userId of users)
    if (parseUserId(userId)?.server !== serverName)
      throw badRequest('PARLEY_INVALID_PARAM', `${userId} is not a user of this server`, 'users');
}

/** `user/keys/claim` and `user/keys/query` (docs/protocol.md, "End-to-end encryption (MLS)"): other servers asking for our users' E2E keys. */
export function userKeyRoutes(
  fed: FederationContext,
  keys: { packages: KeyPackageService; deviceLists: DeviceListService },
  onInbound: (origin: string) => void,
  limiter: RateLimiter | null = null,
): Router<AppState> {
  const router = new Router<AppState>({ prefix: '/federation/v1/user/keys' });
  const auth = requireServer(fed, 256 * 1024, onInbound);

  // POST /federation/v1/user/keys/claim — one-time key packages of our users' devices.
  router.post('/claim', auth, async (ctx: AppContext) => {
    await enforce(limiter, `fed-keys-claim:${fedState(ctx).origin}`, CLAIM_RULE);
    const body = bodyOf<KeyClaimRequest>(ctx, KeyClaimRequest);
    onlyOurs(Object.keys(body.users), fed.serverName);
    const total = Object.values(body.users).reduce((n, d) => n + Math.max(1, d.length), 0);
    if (total > MAX_CLAIM_DEVICES) throw badRequest('PARLEY_INVALID_PARAM', `at most ${MAX_CLAIM_DEVICES} devices per claim`, 'users');
    ctx.body = { key_packages: await keys.packages.claimLocal(body.users) };
  });

  // POST /federation/v1/user/keys/query — our users' signed device lists and signed-in devices.
  router.post('/query', auth, async (ctx: AppContext) => {
    const body = bodyOf<DeviceKeysQueryRequest>(ctx, DeviceKeysQueryRequest);
    onlyOurs(body.users, fed.serverName);
    const device_lists: Record<string, unknown> = {};
    for (const userId of body.users) {
      const answer = await keys.deviceLists.localAnswer(userId);
      if (answer) device_lists[userId] = answer;
    }
    ctx.body = { device_lists };
  });

  return router;
}
