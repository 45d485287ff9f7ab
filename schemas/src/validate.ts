import type { Static, TSchema } from '@sinclair/typebox';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';

// ajv-formats is CommonJS; under NodeNext its default export arrives wrapped.
const addFormats = (addFormatsModule as unknown as { default?: typeof addFormatsModule }).default ?? addFormatsModule;

const ajv = new Ajv({ allErrors: false, strict: true, coerceTypes: false, useDefaults: false });
(addFormats as unknown as (a: Ajv) => void)(ajv);
const compiled = new WeakMap<TSchema, ValidateFunction>();

export type ValidationFailure = {
  ok: false;
  code: 'PARLEY_INVALID_PARAM' | 'PARLEY_MISSING_PARAM';
  /** Dotted path of the offending field (`device_name`, `items.3.id`), or '' for the whole body. */
  field: string;
  message: string;
};
export type ValidationResult<T> = { ok: true; value: T } | ValidationFailure;

const MAX_DEPTH = 32;

/**
 * Strings that Postgres or UTF-8 cannot hold (NUL, unpaired surrogates) are refused before
 * schema validation, wherever they occur, so no handler ever stores one.
 */
function findUnsafeText(value: unknown, path: string[], depth: number): ValidationFailure | null {
  if (depth > MAX_DEPTH) {
    return { ok: false, code: 'PARLEY_INVALID_PARAM', field: path.join('.'), message: `nested deeper than ${MAX_DEPTH} levels` };
  }
  if (typeof value === 'string') {
    if (value.includes('\u0000') || !value.isWellFormed()) {
      return {
        ok: false,
        code: 'PARLEY_INVALID_PARAM',
        field: path.join('.'),
        message: `${path.join('.') || 'value'} contains a NUL character or an unpaired surrogate`,
      };
    }
    return null;
  }
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const bad = findUnsafeText(value[i], [...path, String(i)], depth + 1);
      if (bad) return bad;
    }
    return null;
  }
  if (value !== null && typeof value === 'object') {
    for (const [key, item] of Object.entries(value)) {
      const keyBad = findUnsafeText(key, [...path, '(key)'], depth + 1);
      if (keyBad) return keyBad;
      const bad = findUnsafeText(item, [...path, key], depth + 1);
      if (bad) return bad;
    }
  }
  return null;
}

function describe(error: ErrorObject): ValidationFailure {
  const base = error.instancePath.split('/').slice(1).map(decodePointer);
  switch (error.keyword) {
    case 'required': {
      const field = [...base, String(error.params.missingProperty)].join('.');
      return { ok: false, code: 'PARLEY_MISSING_PARAM', field, message: `${field} is required` };
    }
    case 'additionalProperties': {
      const field = [...base, String(error.params.additionalProperty)].join('.');
      return { ok: false, code: 'PARLEY_INVALID_PARAM', field, message: `${field} is not a known field` };
    }
    default: {
      const field = base.join('.');
      return { ok: false, code: 'PARLEY_INVALID_PARAM', field, message: `${field || 'body'} ${error.message ?? 'is invalid'}` };
    }
  }
}

function decodePointer(segment: string): string {
  return segment.replace(/~1/g, '/').replace(/~0/g, '~');
}

export function validatorFor<S extends TSchema>(schema: S): ValidateFunction {
  let fn = compiled.get(schema);
  if (!fn) {
    fn = ajv.compile(schema);
    compiled.set(schema, fn);
  }
  return fn;
}

/** Checks `value` against `schema`; the failure names the first offending field. */
export function check<S extends TSchema>(schema: S, value: unknown): ValidationResult<Static<S>> {
  const unsafe = findUnsafeText(value, [], 0);
  if (unsafe) return unsafe;
  const fn = validatorFor(schema);
  if (fn(value)) return { ok: true, value: value as Static<S> };
  const first = fn.errors?.[0];
  if (!first) return { ok: false, code: 'PARLEY_INVALID_PARAM', field: '', message: 'body is invalid' };
  return describe(first);
}
