import { describe, expect, it } from 'vitest';
import { check, isServerName, LoginRequest, ProfileUpdateRequest, parseUserId, RegisterRequest } from '../src/index.js';

describe('identifiers (docs/protocol.md)', () => {
  it.each([
    ['@alice:a.example', { localpart: 'alice', server: 'a.example' }],
    ['@a.b_c=d-e:127.0.0.1:8481', { localpart: 'a.b_c=d-e', server: '127.0.0.1:8481' }],
    ['@x:[::1]:8448', { localpart: 'x', server: '[::1]:8448' }],
    [`@${'a'.repeat(64)}:s.test`, { localpart: 'a'.repeat(64), server: 's.test' }],
  ])('parses %s', (id, expected) => {
    expect(parseUserId(id)).toEqual(expected);
  });

  it.each([
    'alice:a.example',
    '@Alice:a.example',
    '@:a.example',
    '@alice',
    '@alice:',
    '@al ice:a.example',
    `@${'a'.repeat(65)}:s.test`,
    '@alice:bad_host!',
    '@alice:a.example:99999999',
    '@ålice:a.example',
    42,
    null,
  ])('refuses %s', (id) => {
    expect(parseUserId(id)).toBeNull();
  });

  it('recognises server names', () => {
    expect(isServerName('a.example')).toBe(true);
    expect(isServerName('127.0.0.1:8008')).toBe(true);
    expect(isServerName('-bad.example')).toBe(false);
    expect(isServerName('a.example/path')).toBe(false);
  });
});

describe('check()', () => {
  it('accepts a valid body and returns it typed', () => {
    const r = check(RegisterRequest, { username: 'alice', password: 'long enough' });
    expect(r).toEqual({ ok: true, value: { username: 'alice', password: 'long enough' } });
  });

  it.each([
    [{ password: 'long enough' }, 'PARLEY_MISSING_PARAM', 'username'],
    [{ username: 'alice', password: 'short' }, 'PARLEY_INVALID_PARAM', 'password'],
    [{ username: 'Alice!', password: 'long enough' }, 'PARLEY_INVALID_PARAM', 'username'],
    [{ username: 'alice', password: 'long enough', admin: true }, 'PARLEY_INVALID_PARAM', 'admin'],
    [{ username: 'alice', password: 'long\u0000enough' }, 'PARLEY_INVALID_PARAM', 'password'],
    [{ username: 'alice', password: 'long enough\ud800' }, 'PARLEY_INVALID_PARAM', 'password'],
    [{ username: 'alice', password: 'long enough', device_name: 7 }, 'PARLEY_INVALID_PARAM', 'device_name'],
    [[], 'PARLEY_INVALID_PARAM', ''],
    [null, 'PARLEY_INVALID_PARAM', ''],
  ])('refuses %j with %s naming "%s"', (body, code, field) => {
    const r = check(RegisterRequest, body);
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.code).toBe(code);
      expect(r.field).toBe(field);
      expect(r.message.length).toBeGreaterThan(0);
    }
  });

  it('refuses unsafe text even in keys and deep inside values', () => {
    const key = check(LoginRequest, { 'user\u0000name': 'x', username: 'a', password: 'b' });
    expect(key).toMatchObject({ ok: false, field: '(key)' });
    let deep: unknown = 'x';
    for (let i = 0; i < 40; i++) deep = [deep];
    expect(check(LoginRequest, { username: 'a', password: 'b', deep })).toMatchObject({
      ok: false,
      message: expect.stringMatching(/nested deeper/),
    });
  });

  it('needs at least one field in a profile update and allows null to clear', () => {
    expect(check(ProfileUpdateRequest, {}).ok).toBe(false);
    expect(check(ProfileUpdateRequest, { displayname: null }).ok).toBe(true);
    expect(check(ProfileUpdateRequest, { avatar_url: 'http://insecure.example/a.png' }).ok).toBe(false);
  });
});
