import Router from '@koa/router';
import { publicKeyFromB64u } from '@parley/federation/keys';
import { CreateQueueRequest, isMailboxMessageId, isQueueId } from '@parley/schemas';
import getRawBody from 'raw-body';
import { badRequest, ParleyError } from '../../errors.js';
import type { AppContext, AppState } from '../../http/context.js';
import { readBody } from '../../http/middleware/body.js';
import type { Services } from '../../services/index.js';
import { type SignedQueueRequest, tooLarge } from '../../services/mailbox.js';

const EMPTY = new Uint8Array(0);

function queueIdParam(ctx: AppContext, name: 'sendId' | 'receiveId'): string {
  const raw = ctx.params[name];
  if (!isQueueId(raw)) throw badRequest('PARLEY_INVALID_PARAM', `${name} in the path is not a queue ID (32 characters of base64url)`, name);
  return raw;
}

/** The parts of a request the queue key signed; these requests carry no body. */
function signed(ctx: AppContext): SignedQueueRequest {
  return { method: ctx.method, path: ctx.path, authorization: ctx.get('authorization') || undefined, body: EMPTY };
}

/**
 * Mailbox queues (docs/protocol.md). No route here takes an account token: senders need only the
 * send ID, receivers sign with the queue key.
 */
export function mailboxRoutes(s: Services): Router<AppState> {
  const router = new Router<AppState>({ prefix: '/mailbox/v1' });

  // GET /mailbox/v1/limits
  router.get('/limits', async (ctx: AppContext) => {
    ctx.body = { enabled: s.mailbox.enabled, ...s.mailbox.limits() };
  });

  // POST /mailbox/v1/queues
  router.post('/queues', async (ctx: AppContext) => {
    const body = await readBody(ctx, CreateQueueRequest, 4096);
    try {
      publicKeyFromB64u(body.queue_key);
    } catch (err) {
      throw badRequest('PARLEY_INVALID_PARAM', `queue_key: ${(err as Error).message.replace(/^publicKey: /, '')}`, 'queue_key');
    }
    ctx.body = { ...(await s.mailbox.createQueue(body.queue_key, ctx.ip)), limits: s.mailbox.limits() };
    ctx.status = 201;
  });

  // PUT /mailbox/v1/send/:sendId
  // The body is one block the sender padded (application/octet-stream), exactly block_bytes.
  router.put('/send/:sendId', async (ctx: AppContext) => {
    const sendId = queueIdParam(ctx, 'sendId');
    const max = s.mailbox.limits().block_bytes;
    const declared = ctx.request.length;
    if (declared !== undefined && declared > max) {
      ctx.set('Connection', 'close');
      throw tooLarge(s.config.mailbox.block_bytes);
    }
    let blob: Buffer;
    try {
      blob = await getRawBody(ctx.req, { limit: max, length: declared });
    } catch (err) {
      if ((err as { type?: string }).type === 'entity.too.large') {
        ctx.set('Connection', 'close');
        throw tooLarge(s.config.mailbox.block_bytes);
      }
      throw new ParleyError(400, 'PARLEY_INVALID_PARAM', 'the blob could not be read', { field: 'body' });
    }
    ctx.body = await s.mailbox.send(sendId, new Uint8Array(blob), ctx.ip);
    ctx.status = 201;
  });

  // GET /mailbox/v1/queues/:receiveId/messages
  router.get('/queues/:receiveId/messages', async (ctx: AppContext) => {
    ctx.body = await s.mailbox.receive(queueIdParam(ctx, 'receiveId'), signed(ctx));
  });

  // DELETE /mailbox/v1/queues/:receiveId/messages/:msgId
  router.delete('/queues/:receiveId/messages/:msgId', async (ctx: AppContext) => {
    const receiveId = queueIdParam(ctx, 'receiveId');
    const msgId = ctx.params.msgId;
    if (!isMailboxMessageId(msgId)) throw badRequest('PARLEY_INVALID_PARAM', 'msgId in the path is not a message ID', 'msgId');
    await s.mailbox.ack(receiveId, msgId, signed(ctx));
    ctx.status = 204;
  });

  // DELETE /mailbox/v1/queues/:receiveId
  router.delete('/queues/:receiveId', async (ctx: AppContext) => {
    await s.mailbox.deleteQueue(queueIdParam(ctx, 'receiveId'), signed(ctx));
    ctx.status = 204;
  });

  return router;
}
