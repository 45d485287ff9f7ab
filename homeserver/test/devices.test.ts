import type { ParleyClient } from '@parley/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from './support/server.js';

describe('devices and profiles', () => {
  let server: TestServer;
  let laptop: ParleyClient;
  let phone: ParleyClient;
  beforeAll(async () => {
    server = await startTestServer();
    laptop = server.client();
    await laptop.register({ username: 'carol', password: 'carol password', device_name: 'Laptop' });
    phone = server.client();
    await phone.login({ username: 'carol', password: 'carol password', device_name: 'Phone' });
  });
  afterAll(() => server?.close());

  it('lists devices with the current one marked and last-seen recorded', async () => {
    const { devices } = await laptop.listDevices();
    expect(devices.map((d) => d.display_name).sort()).toEqual(['Laptop', 'Phone']);
    const current = devices.filter((d) => d.current);
    expect(current).toHaveLength(1);
    expect(current[0]?.device_id).toBe(laptop.session?.device_id);
    // listDevices itself authenticated the laptop, so its last-seen is filled in.
    await expect.poll(async () => (await laptop.listDevices()).devices.find((d) => d.current)?.last_seen_ip).toMatch(/127\.0\.0\.1/);
  });

  it('renames a device and refuses to rename another account’s device', async () => {
    const phoneId = phone.session?.device_id as string;
    const renamed = await laptop.updateDevice(phoneId, { display_name: 'Old phone' });
    expect(renamed).toMatchObject({ device_id: phoneId, display_name: 'Old phone', current: false });
    const mallory = server.client();
    await mallory.register({ username: 'mallory', password: 'mallory password' });
    await expect(mallory.updateDevice(phoneId, { display_name: 'pwned' })).rejects.toMatchObject({ status: 404 });
    await expect(mallory.deleteDevice(phoneId)).rejects.toMatchObject({ status: 404 });
  });

  it('deleting a device revokes its tokens at once', async () => {
    const phoneToken = phone.session?.access_token as string;
    const phoneRefresh = phone.session?.refresh_token as string;
    await laptop.deleteDevice(phone.session?.device_id as string);
    const res = await fetch(`${server.url}/api/v1/account/whoami`, { headers: { authorization: `Bearer ${phoneToken}` } });
    expect(res.status).toBe(401);
    const refresh = await fetch(`${server.url}/api/v1/auth/refresh`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ refresh_token: phoneRefresh }),
    });
    expect(refresh.status).toBe(401);
    expect((await laptop.listDevices()).devices).toHaveLength(1);
  });

  it('sets, reads and clears a profile; only the owner may change it', async () => {
    const me = laptop.session?.user_id as string;
    expect(await laptop.getProfile(me)).toEqual({ user_id: me, displayname: null, avatar_url: null });
    await laptop.updateProfile(me, { displayname: 'Carol 🌻', avatar_url: 'parley://hs1.test/abc123' });
    const reader = server.client();
    await reader.register({ username: 'reader', password: 'reader password' });
    expect(await reader.getProfile(me)).toEqual({ user_id: me, displayname: 'Carol 🌻', avatar_url: 'parley://hs1.test/abc123' });
    await expect(reader.updateProfile(me, { displayname: 'not carol' })).rejects.toMatchObject({ status: 403, code: 'PARLEY_FORBIDDEN' });
    await laptop.updateProfile(me, { avatar_url: null });
    expect(await reader.getProfile(me)).toMatchObject({ displayname: 'Carol 🌻', avatar_url: null });
    await expect(reader.getProfile('@ghost:hs1.test')).rejects.toMatchObject({ status: 404 });
    await expect(laptop.updateProfile(me, { avatar_url: 'javascript:alert(1)' })).rejects.toMatchObject({
      status: 400,
      field: 'avatar_url',
    });
    await expect(laptop.updateProfile(me, {} as never)).rejects.toMatchObject({ status: 400 });
  });
});
