import { describe, expect, it } from 'vitest';
import { describeApiError } from '../src/lib/errors.js';

describe('describeApiError', () => {
  it('security: L11 an error code named after a prototype member gets the server message, not a function', () => {
    for (const code of ['constructor', 'toString', '__proto__', 'hasOwnProperty']) {
      const text = describeApiError({ code, message: 'odd answer' });
      expect(typeof text).toBe('string');
      expect(text).toBe('Odd answer');
    }
  });
});
