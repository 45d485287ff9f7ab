import { describe, expect, it } from 'vitest';
import { FederatedEdus, type FederatedEdusDeps } from '../src/federation/edus.js';
import type { Logger } from '../src/logger.js';

// Issue 10, L11: an EDU's type picked its schema with `type in EduSchemas`, so `constructor`,
// `toString` or `__proto__` found Object.prototype's members and reached the schema check.
describe('security: EDU type lookup', () => {
  it('security: L11 EDU types named after prototype members are unknown types, refused cleanly', async () => {
    const lines: Array<{ level: string; obj: Record<string, unknown> }> = [];
    const record = (level: string) => (obj: Record<string, unknown>) => lines.push({ level, obj });
    const log = { error: record('error'), warn: record('warn'), info: record('info'), debug: record('debug') } as unknown as Logger;
    // Unknown types are refused before any dependency is used.
    const deps = {
      repo: { pruneToDevice: async () => {} },
      clock: { now: () => 0 },
      durableTtlMs: 1,
      log,
      ...Object.fromEntries(['typing', 'presence', 'toDevice', 'timeline', 'roomLog'].map((k) => [k, {}])),
    } as unknown as FederatedEdusDeps;
    const edus = new FederatedEdus(deps);
    const types = ['constructor', 'toString', '__proto__', 'hasOwnProperty', 'valueOf'];
    const summary = await edus.receive(
      'hs2.test',
      types.map((type) => ({ type, user_id: '@x:hs2.test' })),
      log,
    );
    expect(summary).toEqual({ applied: 0, refused: types.length });
    expect(lines.filter((l) => l.level === 'error')).toEqual([]);
    expect(lines.map((l) => l.obj.problem)).toEqual(types.map(() => 'not an EDU of a known type'));
    edus.stop();
  });
});
