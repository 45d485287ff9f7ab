import Router from '@koa/router';
import { eventId as computeEventId, verifyEvent } from '@parley/federation/events';
import { check, FederationTransaction, type RoomEvent, type TransactionResult } from '@parley/schemas';
import { ParleyError } from '../../errors.js';
import type { FederationContext } from '../../federation/setup.js';
import type { AppContext, AppState } from '../../http/context.js';
import { fedState, requireServer } from '../../http/middleware/federation-auth.js';
import { txnIdParam } from '../../http/params.js';
import type { OutboxRepository } from '../../repositories/outbox.js';
import type { RoomRepository } from '../../repositories/rooms.js';
import type { Clock } from '../../services/clock.js';

export interface SendDeps {
  fed: FederationContext;
  outbox: OutboxRepository;
  rooms: RoomRepository;
  clock: Clock;
  maxBytes: number;
  onInbound: (origin: string) => void;
}

/**
 * PUT /federation/v1/send/:txnId — receives a transaction. Idempotent by (origin, txnId);
 * every event is checked for its origin's signature and content hash before anything else.
 * Rooms this server does not take part in are refused per event; applying events of shared
 * rooms comes with remote rooms (see the homeserver README).
 */
export function sendRoutes(d: SendDeps): Router<AppState> {
  const router = new Router<AppState>({ prefix: '/federation/v1' });

  // PUT /federation/v1/send/:txnId
  router.put('/send/:txnId', requireServer(d.fed, d.maxBytes, d.onInbound), async (ctx: AppContext) => {
    const txnId = txnIdParam(ctx);
    const { origin, body } = fedState(ctx);
    const parsed = check(FederationTransaction, body);
    if (!parsed.ok)
      throw new ParleyError(parsed.field.startsWith('events') || parsed.field.startsWith('edus') ? 413 : 400, parsed.code, parsed.message, {
        field: parsed.field,
      });
    if (!(await d.outbox.recordInbound(origin, txnId, d.clock.now()))) {
      ctx.body = { events: {}, duplicate: true } satisfies TransactionResult;
      return;
    }
    const results: TransactionResult['events'] = {};
    for (const raw of parsed.value.events) {
      const event = raw as unknown as RoomEvent;
      let id: string;
      try {
        id = computeEventId(event);
      } catch {
        continue; // not an event at all: nothing to name it by
      }
      if (event.origin !== origin) {
        results[id] = { error: `event origin ${String(event.origin)} is not the sending server ${origin}` };
        continue;
      }
      await d.fed.keyStore.prefetch(origin);
      const verdict = verifyEvent(event, d.fed.keyStore.keyRing({ at: event.origin_ts }));
      if (!verdict.ok) {
        ctx.state.log.warn({ event_id: id, reason: verdict.reason }, 'refused a federated event');
        results[id] = { error: `${verdict.kind}: ${verdict.reason}` };
        continue;
      }
      const room = await d.rooms.find(event.room_id);
      results[id] = room
        ? { error: 'remote room participation is not enabled on this server yet' }
        : { error: `this server is not in ${event.room_id}` };
    }
    ctx.body = { events: results, duplicate: false } satisfies TransactionResult;
  });

  return router;
}
