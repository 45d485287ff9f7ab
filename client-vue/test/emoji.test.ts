import { describe, expect, it } from 'vitest';
import { EMOJI, emojiFor, searchEmoji, shortcodeQuery } from '../src/lib/emoji.js';

describe('emoji shortcodes', () => {
  it('has unique, well-formed shortcodes', () => {
    const codes = EMOJI.map(([c]) => c);
    expect(new Set(codes).size).toBe(codes.length);
    for (const c of codes) expect(c).toMatch(/^[a-z0-9_+-]{1,32}$/);
    expect(emojiFor('tada')).toBe('🎉');
    expect(emojiFor('nope')).toBeUndefined();
  });

  it('finds prefix matches first, then word parts, then substrings', () => {
    expect(searchEmoji('thu').map((e) => e.code)).toEqual(['thumbsup', 'thumbsdown']);
    expect(searchEmoji('heart')[0]?.code).toBe('heart');
    expect(searchEmoji('eyes').map((e) => e.code)).toContain('heart_eyes');
    expect(searchEmoji(':fire:').map((e) => e.emoji)).toEqual(['🔥']);
    expect(searchEmoji('zzzzz')).toEqual([]);
  });

  it('reads a :query of two letters or more before the caret, not times or URLs', () => {
    expect(shortcodeQuery('nice :ta', 8)).toEqual({ start: 5, query: 'ta' });
    expect(shortcodeQuery(':t', 2)).toBeNull();
    expect(shortcodeQuery('at 10:30', 8)).toBeNull();
    expect(shortcodeQuery('see http://x', 12)).toBeNull();
  });
});
