import Router from '@koa/router';
import {
  decodeBody,
  envelopeOrigin,
  parseRequestEnvelope,
  RELAY_FORWARD_PREFIX,
  TokenBucket,
  verifyRequestEnvelope,
} from '@parley/federation/relay';
import { addressBucket } from '@parley/federation/transport';
import getRawBody from 'raw-body';
import { ParleyError } from '../errors.js';
import type { FederationContext } from '../federation/setup.js';
import type { AppContext, AppState } from '../http/context.js';
import type { RelayHub } from './relay-hub.js';
import type { RelayMetrics } from './relay-metrics.js';

const MAX_BUCKETS = 10_000;

/**
 * `POST /federation/v1/relay/forward/<destination>` (docs/protocol.md, "Anchor relays"): checks
 * the envelope (shape, size, addressed to the path's destination), the origin's signature made
 * for the destination, the origin's rate, then carries it over the destination's reservation and
 * answers with the destination's own status, content type and body.
 */
export function relayForwardRoutes(fed: FederationContext, hub: RelayHub, metrics: RelayMetrics): Router<AppState> {
  const router = new Router<AppState>();
  const limits = hub.limits;
  const envelopeCap = Math.ceil((limits.max_body_bytes * 4) / 3) + 16 * 1024;
  const buckets = new Map<string, TokenBucket>();
  const take = (key: string): boolean => {
    const now = fed.clock.now();
    let bucket = buckets.get(key);
    if (!bucket) {
      while (buckets.size >= MAX_BUCKETS) buckets.delete(buckets.keys().next().value!);
      bucket = new TokenBucket(limits.origin_requests_per_second, limits.origin_requests_per_second * 2, now);
      buckets.set(key, bucket);
    }
    return bucket.take(1, now);
  };
  const refuse = (status: number, code: string, message: string): never => {
    metrics.refusals.inc({ code });
    throw new ParleyError(status, code as never, message);
  };

  router.post(`${RELAY_FORWARD_PREFIX}:destination`, async (ctx: AppContext) => {
    const destination = String(ctx.params.destination ?? '');
    if (!ctx.request.is('application/json')) refuse(415, 'PARLEY_UNSUPPORTED_MEDIA_TYPE', 'the relay envelope is application/json');
    let text: string;
    try {
      text = await getRawBody(ctx.req, { limit: envelopeCap, length: ctx.request.length, encoding: 'utf-8' });
    } catch (err) {
      if ((err as { type?: string }).type === 'entity.too.large') {
        refuse(413, 'PARLEY_RELAY_TOO_LARGE', `the envelope is larger than this relay carries (max_body_bytes ${limits.max_body_bytes})`);
      }
      throw new ParleyError(400, 'PARLEY_RELAY_BAD_ENVELOPE', 'the envelope could not be read');
    }
    let json: unknown;
    try {
      json = JSON.parse(text!);
    } catch {
      refuse(400, 'PARLEY_BAD_JSON', 'the envelope is not valid JSON');
    }
    const parsed = parseRequestEnvelope(json, limits.max_body_bytes);
    if (!parsed.ok) {
      const tooLarge = parsed.reason.startsWith('body: more than');
      return refuse(tooLarge ? 413 : 400, tooLarge ? 'PARLEY_RELAY_TOO_LARGE' : 'PARLEY_RELAY_BAD_ENVELOPE', parsed.reason);
    }
    const envelope = parsed.value;
    if (envelope.destination !== destination)
      refuse(400, 'PARLEY_RELAY_BAD_ENVELOPE', 'the envelope is for another destination than the path names');
    const blocked = fed.refuse(destination);
    if (blocked) refuse(403, 'PARLEY_FORBIDDEN', blocked);
    const requester = ctx.ip || 'unknown';
    let origin: string | undefined;
    if (envelope.authorization === undefined) {
      // A key document fetch: nothing to verify (the document is self-signed), charged to the caller's address.
      if (!take(`ip:${addressBucket(requester)}`))
        refuse(
          429,
          'PARLEY_RELAY_ORIGIN_LIMIT',
          `more than ${limits.origin_requests_per_second} requests/s from ${addressBucket(requester)}`,
        );
    } else {
      origin = envelopeOrigin(envelope);
      const originBlocked = origin === undefined ? undefined : fed.refuse(origin);
      if (originBlocked) refuse(403, 'PARLEY_FORBIDDEN', originBlocked);
      if (origin !== undefined && !take(`origin:${origin}`)) {
        refuse(
          429,
          'PARLEY_RELAY_ORIGIN_LIMIT',
          `more than ${limits.origin_requests_per_second} requests/s from ${origin} through this relay`,
        );
      }
      const verified = await verifyRequestEnvelope(envelope, (o, k) => fed.keyStore.getKey(o, k, { requester }), {
        now: fed.clock.now(),
        windowMs: fed.config.request_time_window_ms,
      });
      if (!verified.ok) refuse(401, verified.code, `the origin's signature: ${verified.reason}`);
    }
    if (!hub.isReserved(destination)) {
      // Only a transaction can be held for later (store-and-forward); anything else needs the destination now.
      const transaction = envelope.method === 'PUT' && envelope.uri.startsWith('/federation/v1/send/');
      if (hub.storeAndForward && origin !== undefined && transaction) {
        const held = await hub.storeAndForward(origin, destination, envelope);
        ctx.status = held.status;
        ctx.body = held.body;
        return;
      }
      refuse(503, 'PARLEY_RELAY_NOT_CONNECTED', `${destination} holds no reservation on this relay now; retry later`);
    }
    const response = await hub.forward(envelope);
    ctx.status = response.status;
    ctx.set('parley-relayed-by', fed.serverName);
    if (response.body !== undefined) {
      ctx.type = response.content_type ?? 'application/octet-stream';
      ctx.body = decodeBody(response.body);
    } else {
      ctx.body = '';
    }
  });
  return router;
}
