import { afterEach, describe, expect, it } from 'vitest';
import { mintRegistrationToken } from '../src/services/registration.js';
import { ManualClock, startTestServer, type TestServer } from './support/server.js';

describe('registration modes and tokens', () => {
  let server: TestServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  it('closed: nobody registers, and flows says so', async () => {
    server = await startTestServer({ registration: { mode: 'closed' } });
    const client = server.client();
    expect(await client.getAuthFlows()).toEqual({ server_name: 'hs1.test', registration: 'closed' });
    await expect(client.register({ username: 'dave', password: 'dave password' })).rejects.toMatchObject({
      status: 403,
      code: 'PARLEY_REGISTRATION_CLOSED',
    });
  });

  it('token: needs a token, honours its uses and its expiry', async () => {
    const clock = new ManualClock();
    server = await startTestServer({ registration: { mode: 'token' } }, clock);
    const s = server.services;
    const twoUses = await mintRegistrationToken(s.registrationTokens, clock, 2, null);
    const shortLived = await mintRegistrationToken(s.registrationTokens, clock, null, 60_000);
    const client = () => (server as TestServer).client();

    await expect(client().register({ username: 'u0', password: 'password 0' })).rejects.toMatchObject({
      status: 401,
      code: 'PARLEY_REGISTRATION_TOKEN_INVALID',
    });
    await expect(client().register({ username: 'u0', password: 'password 0', registration_token: 'bogus' })).rejects.toMatchObject({
      code: 'PARLEY_REGISTRATION_TOKEN_INVALID',
    });
    await client().register({ username: 'u1', password: 'password 1', registration_token: twoUses.token });
    await client().register({ username: 'u2', password: 'password 2', registration_token: twoUses.token });
    await expect(client().register({ username: 'u3', password: 'password 3', registration_token: twoUses.token })).rejects.toMatchObject({
      code: 'PARLEY_REGISTRATION_TOKEN_INVALID',
    });

    await client().register({ username: 'u4', password: 'password 4', registration_token: shortLived.token });
    clock.advance(61_000);
    await expect(client().register({ username: 'u5', password: 'password 5', registration_token: shortLived.token })).rejects.toMatchObject(
      {
        code: 'PARLEY_REGISTRATION_TOKEN_INVALID',
      },
    );
    const rows = await s.registrationTokens.list();
    expect(rows.find((r) => r.token === twoUses.token)?.uses_completed).toBe(2);
  });

  it('token: a taken username does not spend a use', async () => {
    const clock = new ManualClock();
    server = await startTestServer({ registration: { mode: 'token' } }, clock);
    const one = await mintRegistrationToken(server.services.registrationTokens, clock, 2, null);
    await server.client().register({ username: 'same', password: 'password 1', registration_token: one.token });
    await expect(
      server.client().register({ username: 'same', password: 'password 2', registration_token: one.token }),
    ).rejects.toMatchObject({
      code: 'PARLEY_USER_IN_USE',
    });
    await server.client().register({ username: 'other', password: 'password 3', registration_token: one.token });
  });

  it('token: concurrent registrations never overspend a single-use token', async () => {
    const clock = new ManualClock();
    server = await startTestServer({ registration: { mode: 'token' } }, clock);
    const single = await mintRegistrationToken(server.services.registrationTokens, clock, 1, null);
    const results = await Promise.allSettled(
      Array.from({ length: 6 }, (_, i) =>
        (server as TestServer).client().register({ username: `racer${i}`, password: 'racer password', registration_token: single.token }),
      ),
    );
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
  });
});
