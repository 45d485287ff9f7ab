import { EVENT_ID_PATTERN, parseUserId, ROOM_ALIAS_PATTERN, ROOM_ID_PATTERN } from '@parley/schemas';
import { badRequest } from '../errors.js';
import type { AppContext } from './context.js';

const roomIdRe = new RegExp(ROOM_ID_PATTERN);
const aliasRe = new RegExp(ROOM_ALIAS_PATTERN);
const eventIdRe = new RegExp(EVENT_ID_PATTERN);
const eventTypeRe = /^[a-z][a-z0-9_.-]{0,127}$/;
const txnRe = /^[A-Za-z0-9._~-]{1,64}$/;

function param(ctx: AppContext, name: string): string {
  const v = ctx.params[name];
  if (typeof v !== 'string') throw badRequest('PARLEY_MISSING_PARAM', `${name} is required in the path`, name);
  return v;
}

function matching(ctx: AppContext, name: string, re: RegExp, what: string): string {
  const v = param(ctx, name);
  if (v.length > 255 || !re.test(v) || !v.isWellFormed())
    throw badRequest('PARLEY_INVALID_PARAM', `${name} in the path is not ${what}`, name);
  return v;
}

export const roomIdParam = (ctx: AppContext, name = 'roomId') => matching(ctx, name, roomIdRe, 'a room ID (!opaque:server)');
export const eventIdParam = (ctx: AppContext, name = 'eventId') => matching(ctx, name, eventIdRe, 'an event ID');
export const eventTypeParam = (ctx: AppContext, name = 'type') => matching(ctx, name, eventTypeRe, 'an event type');
export const txnIdParam = (ctx: AppContext, name = 'txnId') => matching(ctx, name, txnRe, 'a transaction ID ([A-Za-z0-9._~-], ≤ 64)');
export const aliasParam = (ctx: AppContext, name = 'alias') => matching(ctx, name, aliasRe, 'a room alias (#name:server)');

export function roomOrAliasParam(ctx: AppContext, name = 'roomId'): string {
  const v = param(ctx, name);
  return v.startsWith('#') ? aliasParam(ctx, name) : roomIdParam(ctx, name);
}

export function stateKeyParam(ctx: AppContext, name = 'stateKey'): string {
  const v = ctx.params[name] ?? '';
  if (v.length > 255 || v.includes('\u0000') || !v.isWellFormed())
    throw badRequest('PARLEY_INVALID_PARAM', `${name} is not a valid state key`, name);
  return v;
}

export function userIdValue(value: unknown, field: string): string {
  if (!parseUserId(value)) throw badRequest('PARLEY_INVALID_PARAM', `${field} is not a valid user ID`, field);
  return value as string;
}

/** A single query parameter as a string (repeated parameters are refused). */
export function queryString(ctx: AppContext, name: string, maxLength = 512): string | undefined {
  const v = ctx.query[name];
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || v.length > maxLength || v.includes('\u0000') || !v.isWellFormed()) {
    throw badRequest('PARLEY_INVALID_PARAM', `query parameter ${name} is invalid`, name);
  }
  return v;
}

export function queryInt(ctx: AppContext, name: string, def: number, min: number, max: number): number {
  const v = queryString(ctx, name, 12);
  if (v === undefined) return def;
  if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max) {
    throw badRequest('PARLEY_INVALID_PARAM', `query parameter ${name} must be an integer from ${min} to ${max}`, name);
  }
  return Number(v);
}
