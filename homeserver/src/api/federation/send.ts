import Router from '@koa/router';
import { eventId as computeEventId } from '@parley/federation/events';
import type { SigningKey } from '@parley/federation/keys';
import { RELAYED_BY_HEADER, signReceipt } from '@parley/federation/relay';
import { check, FederationTransaction, type RoomEvent, type TransactionResult } from '@parley/schemas';
import { ParleyError } from '../../errors.js';
import type { FederatedEdus } from '../../federation/edus.js';
import type { FederatedRooms } from '../../federation/rooms.js';
import type { FederationContext } from '../../federation/setup.js';
import type { AppContext, AppState } from '../../http/context.js';
import { fedState, requireServer } from '../../http/middleware/federation-auth.js';
import { txnIdParam } from '../../http/params.js';
import type { OutboxRepository } from '../../repositories/outbox.js';
import type { Clock } from '../../services/clock.js';

const MAX_TRANSACTIONS_IN_FLIGHT = 2;

export interface SendDeps {
  fed: FederationContext;
  outbox: OutboxRepository;
  rooms: FederatedRooms;
  edus: FederatedEdus;
  clock: Clock;
  maxBytes: number;
  onInbound: (origin: string) => void;
  /** Signs delivery receipts for transactions a relay brings (docs/protocol.md, store-and-forward). */
  identity?: SigningKey;
}

/**
 * PUT /federation/v1/send/:txnId — receives a transaction. Idempotent by (origin, txnId);
 * each entry (an event and the host's signed sequencing record) is verified and applied by
 * FederatedRooms; refusals are answered per event. EDUs are checked and applied one by one
 * (FederatedEdus); a refused EDU is logged and skipped.
 */
export function sendRoutes(d: SendDeps): Router<AppState> {
  const router = new Router<AppState>({ prefix: '/federation/v1' });
  // Transactions being processed, per origin. A server delivers one at a time; more in
  // parallel would multiply what one transaction may cost (its backfill budget), so they wait.
  const inFlight = new Map<string, number>();

  // PUT /federation/v1/send/:txnId
  router.put('/send/:txnId', requireServer(d.fed, d.maxBytes, d.onInbound), async (ctx: AppContext) => {
    const txnId = txnIdParam(ctx);
    const { origin, body } = fedState(ctx);
    const parsed = check(FederationTransaction, body);
    if (!parsed.ok)
      throw new ParleyError(parsed.field.startsWith('events') || parsed.field.startsWith('edus') ? 413 : 400, parsed.code, parsed.message, {
        field: parsed.field,
      });
    // Refused before it is recorded, so the sender's retry is processed, not answered as a
    // duplicate. Transactions without events (EDUs, a server announcing it is back) cost little.
    if (parsed.value.events.length === 0) return receive(ctx, origin, txnId, parsed.value);
    if ((inFlight.get(origin) ?? 0) >= MAX_TRANSACTIONS_IN_FLIGHT)
      throw new ParleyError(
        429,
        'PARLEY_RATE_LIMITED',
        `${origin} has ${MAX_TRANSACTIONS_IN_FLIGHT} transactions in progress here already`,
        {
          retryAfterMs: 1_000,
        },
      );
    inFlight.set(origin, (inFlight.get(origin) ?? 0) + 1);
    try {
      await receive(ctx, origin, txnId, parsed.value);
    } finally {
      const left = (inFlight.get(origin) ?? 1) - 1;
      if (left > 0) inFlight.set(origin, left);
      else inFlight.delete(origin);
    }
  });

  async function receive(ctx: AppContext, origin: string, txnId: string, txn: FederationTransaction): Promise<void> {
    if (!(await d.outbox.recordInbound(origin, txnId, d.clock.now()))) {
      ctx.body = withReceipt(ctx, origin, txnId, { events: {}, duplicate: true });
      return;
    }
    const results: TransactionResult['events'] = {};
    // Each entry is an event with the host's sequencing record; all checks happen in receiveMany().
    const problems = await d.rooms.receiveMany(origin, txn.events);
    txn.events.forEach((raw, i) => {
      let id: string;
      try {
        id = computeEventId((raw as { event?: unknown }).event as RoomEvent);
      } catch {
        return; // not an event at all: nothing to name it by
      }
      const problem = problems[i] ?? null;
      if (problem) ctx.state.log.warn({ event_id: id, problem }, 'refused a federated entry');
      results[id] = problem ? { error: problem } : {};
    });
    // After the events, so a receipt can name an event of this same transaction.
    await d.edus.receive(origin, txn.edus, ctx.state.log);
    ctx.body = withReceipt(ctx, origin, txnId, { events: results, duplicate: false });
  }

  // A transaction a relay brought gets our signed receipt, which the relay hands back to the
  // origin: the origin's proof that we have it (the relay cannot make one).
  function withReceipt(ctx: AppContext, origin: string, txnId: string, result: TransactionResult): TransactionResult {
    if (!d.identity || !ctx.get(RELAYED_BY_HEADER)) return result;
    const receipt = signReceipt({ origin, destination: d.fed.serverName, txnId, ts: d.clock.now() }, d.identity);
    return { ...result, receipt } as TransactionResult;
  }

  return router;
}
