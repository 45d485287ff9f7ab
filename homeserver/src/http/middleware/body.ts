import { check } from '@parley/schemas';
import type { Static, TSchema } from '@sinclair/typebox';
import getRawBody from 'raw-body';
import { badRequest, ParleyError } from '../../errors.js';
import type { AppContext } from '../context.js';

function hasBody(ctx: AppContext): boolean {
  const length = ctx.request.length;
  if (length !== undefined) return length > 0;
  return ctx.get('transfer-encoding') !== '';
}

/**
 * Reads, parses and validates a JSON body in one step; `fieldPrefix` names where the body
 * sits in error messages (event content is reported as `content.<field>`). An absent body counts as `{}` so
 * that endpoints without fields (logout) accept an empty POST.
 */
export async function readBody<S extends TSchema>(ctx: AppContext, schema: S, limitBytes: number, fieldPrefix = ''): Promise<Static<S>> {
  let value: unknown = {};
  if (hasBody(ctx)) {
    if (!ctx.request.is('application/json')) {
      throw new ParleyError(415, 'PARLEY_UNSUPPORTED_MEDIA_TYPE', 'Content-Type must be application/json');
    }
    const charset = ctx.request.charset;
    if (charset && charset.toLowerCase() !== 'utf-8' && charset.toLowerCase() !== 'utf8') {
      throw new ParleyError(415, 'PARLEY_UNSUPPORTED_MEDIA_TYPE', 'JSON bodies must be UTF-8');
    }
    const text = await getRawBody(ctx.req, { limit: limitBytes, length: ctx.request.length, encoding: 'utf-8' });
    try {
      value = JSON.parse(text);
    } catch {
      throw badRequest('PARLEY_BAD_JSON', 'body is not valid JSON');
    }
  }
  const result = check(schema, value);
  if (!result.ok) {
    const field = `${fieldPrefix}${result.field}`;
    throw new ParleyError(400, result.code, fieldPrefix ? `${fieldPrefix}${result.message}` : result.message, { field });
  }
  return result.value;
}
